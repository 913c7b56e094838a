"""A TLS and SASL front for the embedded broker, for the security tests.

The bundled Tansu 0.6 build cannot serve TLS or authenticate SCRAM users (docs/security.md), so
the tests prove the client side against the real embedded broker behind this front: TLS
(optionally requiring a client certificate) and SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512
(RFC 5802) terminated here, every other byte piped to Tansu unchanged. :func:`make_pki` makes the
certificates with the openssl command.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import struct
import subprocess
import threading
import uuid
from pathlib import Path

from streams.kafka.broker import EmbeddedBroker, free_port

__all__ = ["SecurityFront", "make_pki"]

_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_UNSUPPORTED_SASL_MECHANISM, _SASL_AUTHENTICATION_FAILED = 33, 58


class _Refused(Exception):
    """The client's credentials are wrong; the front answers SASL_AUTHENTICATION_FAILED and hangs up."""


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _read_uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _skip_tags(data: bytes, at: int) -> int:
    count, at = _read_uvarint(data, at)
    for _ in range(count):
        _tag, at = _read_uvarint(data, at)
        size, at = _read_uvarint(data, at)
        at += size
    return at


def _request(frame: bytes) -> tuple[int, int, int, bytes]:
    """api key, version, correlation id and body of one request (header v1, or v2 when flexible)."""
    key, version, correlation, client_id = struct.unpack_from(">hhih", frame)
    at = 10 + max(client_id, 0)
    if (key, version) >= (_SASL_AUTHENTICATE, 2):
        at = _skip_tags(frame, at)
    return key, version, correlation, frame[at:]


def _handshake_reply(correlation: int, error: int, mechanisms: list[str]) -> bytes:
    names = b"".join(struct.pack(">h", len(m)) + m.encode() for m in mechanisms)
    return struct.pack(">ihi", correlation, error, len(mechanisms)) + names


def _authenticate_reply(
    correlation: int, version: int, error: int, message: str | None, token: bytes
) -> bytes:
    text = None if message is None else message.encode()
    if version >= 2:  # flexible: compact strings/bytes and empty tag buffers
        encoded = b"\x00" if text is None else _uvarint(len(text) + 1) + text
        return (struct.pack(">i", correlation) + b"\x00" + struct.pack(">h", error) + encoded
                + _uvarint(len(token) + 1) + token + struct.pack(">q", 0) + b"\x00")  # fmt: skip
    encoded = struct.pack(">h", -1) if text is None else struct.pack(">h", len(text)) + text
    reply = struct.pack(">ih", correlation, error) + encoded + struct.pack(">i", len(token)) + token
    return reply + struct.pack(">q", 0) if version >= 1 else reply


class _Plain:
    """SASL PLAIN (RFC 4616): one token ``authzid NUL user NUL password``."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users, self.done = users, False

    def step(self, token: bytes) -> bytes:
        _authzid, user, password = token.decode().split("\x00")
        if user not in self.users or not hmac.compare_digest(self.users[user], password):
            raise _Refused("Authentication failed: invalid username or password")
        self.done = True
        return b""


class _Scram:
    """Server side of SCRAM-SHA-256/512 (RFC 5802), which Tansu 0.6 cannot run for lack of a user store."""

    def __init__(self, users: dict[str, str], mechanism: str) -> None:
        self.users, self.hash, self.done = users, "sha256" if mechanism.endswith("256") else "sha512", False
        self.first: tuple[str, str, str, bytes] | None = None

    def step(self, token: bytes) -> bytes:
        message = token.decode()
        if self.first is None:
            bare = message.split(",", 2)[2]
            fields = dict(part.split("=", 1) for part in bare.split(","))
            if fields["n"] not in self.users:
                raise _Refused("Authentication failed: invalid credentials")
            salt, nonce = os.urandom(16), fields["r"] + uuid.uuid4().hex
            server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096"
            salted = hashlib.pbkdf2_hmac(self.hash, self.users[fields["n"]].encode(), salt, 4096)
            self.first = (bare, server_first, nonce, salted)
            return server_first.encode()
        bare, server_first, nonce, salted = self.first
        without_proof, _, proof = message.rpartition(",p=")
        auth = f"{bare},{server_first},{without_proof}".encode()
        client_key = hmac.digest(salted, b"Client Key", self.hash)
        stored_key = hashlib.new(self.hash, client_key).digest()
        claimed = bytes(
            a ^ b for a, b in zip(base64.b64decode(proof), hmac.digest(stored_key, auth, self.hash))
        )
        if f"r={nonce}" not in without_proof or hashlib.new(self.hash, claimed).digest() != stored_key:
            raise _Refused("Authentication failed: invalid credentials")
        self.done = True
        server_key = hmac.digest(salted, b"Server Key", self.hash)
        return b"v=" + base64.b64encode(hmac.digest(server_key, auth, self.hash))


class SecurityFront:
    """TLS and/or SASL in front of a fresh embedded Tansu, which advertises the front's port.

    Before authentication only ApiVersions (forwarded to Tansu) and the SASL requests are served,
    as a Kafka broker with a SASL listener does; afterwards bytes flow both ways unchanged.
    """

    def __init__(
        self, *, log_path: Path, tls: tuple[Path, Path] | None = None, client_ca: Path | None = None,
        users: dict[str, str] | None = None, mechanism: str = "SCRAM-SHA-512",
    ) -> None:  # fmt: skip
        self.log_path, self.users, self.mechanism = log_path, users, mechanism
        self.context: ssl.SSLContext | None = None
        if tls is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
            if client_ca is not None:
                self.context.verify_mode = ssl.CERT_REQUIRED
                self.context.load_verify_locations(client_ca)
        self.port = 0
        self.logins_accepted = self.logins_refused = self.handshakes_refused = 0
        self.upstream_port = free_port()
        self.broker: EmbeddedBroker | None = None
        self._ready = threading.Event()
        self._open: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SecurityFront:
        self._thread.start()
        assert self._ready.wait(10), "security front did not start"
        self.broker = EmbeddedBroker(
            self.upstream_port, advertised_port=self.port, log_path=self.log_path
        ).start()
        return self

    def stop(self) -> None:
        # Front first: its open upstream connections would hold Tansu's shutdown for seconds.
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)
        if self.broker is not None:
            self.broker.stop()

    async def _main(self) -> None:
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped.wait()
        for writer in self._open:  # EOF ends every pipe, so no handler is left to cancel
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._open.add(writer)
        try:
            await self._front(reader, writer)
        finally:
            self._open.discard(writer)
            self._handlers.discard(task)

    async def _front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.context is not None:
            try:
                await writer.start_tls(self.context)
            except (OSError, ssl.SSLError):
                self.handshakes_refused += 1  # e.g. a client without the certificate the front requires
                writer.close()
                return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._open.add(upstream_writer)
        try:
            if self.users is None or await self._authenticate(
                reader, writer, upstream_reader, upstream_writer
            ):
                await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client hung up (or failed its TLS handshake)
        finally:
            self._open.discard(upstream_writer)
            writer.close()
            upstream_writer.close()

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader, upstream_writer: asyncio.StreamWriter,
    ) -> bool:  # fmt: skip
        assert self.users is not None
        session: _Plain | _Scram | None = None
        while True:
            frame = await _read_frame(reader)
            key, version, correlation, body = _request(frame)
            if key == _API_VERSIONS:
                upstream_writer.write(struct.pack(">i", len(frame)) + frame)
                writer.write(_framed(await _read_frame(upstream_reader)))
            elif key == _SASL_HANDSHAKE:
                asked = body[2 : 2 + struct.unpack_from(">h", body)[0]].decode()
                if asked != self.mechanism:
                    writer.write(
                        _framed(_handshake_reply(correlation, _UNSUPPORTED_SASL_MECHANISM, [self.mechanism]))
                    )
                    await writer.drain()
                    return False
                session = _Plain(self.users) if asked == "PLAIN" else _Scram(self.users, asked)
                writer.write(_framed(_handshake_reply(correlation, 0, [asked])))
            elif key == _SASL_AUTHENTICATE and session is not None:
                if version >= 2:
                    size, at = _read_uvarint(body, 0)
                    token = body[at : at + size - 1]
                else:
                    token = body[4 : 4 + struct.unpack_from(">i", body)[0]]
                try:
                    reply = session.step(token)
                except _Refused as refused:
                    self.logins_refused += 1
                    writer.write(_framed(_authenticate_reply(correlation, version, _SASL_AUTHENTICATION_FAILED,
                                                             str(refused), b"")))  # fmt: skip
                    await writer.drain()
                    return False
                writer.write(_framed(_authenticate_reply(correlation, version, 0, None, reply)))
                if session.done:
                    self.logins_accepted += 1
                    await writer.drain()
                    return True
            else:
                return False  # anything else before authentication: hang up, as Kafka does
            await writer.drain()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


def make_pki(directory: Path, key_password: str) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate whose key is encrypted."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tradeloop-test-ca",
    )
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=tradeloop-{name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    openssl("pkcs8", "-topk8", "-in", "client.key", "-out", "client-encrypted.key", "-v2", "aes-256-cbc",
            "-passout", f"pass:{key_password}")  # fmt: skip
    return {"ca": directory / "ca.pem", "server_cert": directory / "server.pem", "server_key": directory / "server.key",
            "client_cert": directory / "client.pem", "client_key": directory / "client-encrypted.key"}  # fmt: skip
