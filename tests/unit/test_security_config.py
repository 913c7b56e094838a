"""Security settings reach every Kafka client config tradeloop builds, and secrets stay masked.

No broker here: tests/integration/test_security.py proves the same settings against a broker.
"""

from __future__ import annotations

import ast
import logging
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from streams.kafka.config import admin_config, consumer_config, producer_config
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "agents", "trainers", "tradeloop")
SECRETS = {"sasl": "sasl-pw-7f3a", "key": "key-pw-91c2", "signing": "hmac-key-55d0"}
CONFIG_BUILDERS = {"producer_config", "consumer_config", "admin_config", "base_config"}
KAFKA_CLIENTS = {"Producer", "Consumer", "AdminClient", "SerializingProducer", "DeserializingConsumer"}

SASL_SSL = {
    "protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "svc",
    "sasl_password": SECRETS["sasl"], "ssl_ca_location": "/etc/kafka/ca.pem",
    "ssl_certificate_location": "/etc/kafka/client.pem", "ssl_key_location": "/etc/kafka/client.key",
    "ssl_key_password": SECRETS["key"],
}  # fmt: skip


def settings_of(**values: Any) -> Settings:
    """Settings from plain values (sections as dicts, secrets as str), as the environment gives them."""
    return Settings(**values)


def all_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "producer": producer_config(settings, "p"),
        "consumer": consumer_config(settings, "g", "c"),
        "admin": admin_config(settings),
    }


def test_every_client_config_carries_sasl_and_tls() -> None:
    settings = settings_of(kafka_bootstrap="k1:9093", security=SASL_SSL)
    expected = {
        "bootstrap.servers": "k1:9093", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc", "sasl.password": SECRETS["sasl"], "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.certificate.location": "/etc/kafka/client.pem", "ssl.key.location": "/etc/kafka/client.key",
        "ssl.key.password": SECRETS["key"],
    }  # fmt: skip
    for name, config in all_configs(settings).items():
        assert {k: config.get(k) for k in expected} == expected, name


def test_overrides_keep_the_security_settings() -> None:
    settings = settings_of(kafka_bootstrap="k1:9093", security=SASL_SSL)
    config = consumer_config(settings, "g", "c", **{"fetch.wait.max.ms": 5})
    assert config["sasl.password"] == SECRETS["sasl"] and config["fetch.wait.max.ms"] == 5


def test_plaintext_configs_carry_no_security_properties() -> None:
    for name, config in all_configs(settings_of(kafka_bootstrap="k:9092")).items():
        assert config["security.protocol"] == "PLAINTEXT", name
        assert not [k for k in config if k.startswith(("sasl.", "ssl."))], name


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"}, "needs sasl_password"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": "p"}, "needs sasl_mechanism"),
        ({"sasl_username": "u"}, "does not use SASL"),
        (
            {
                "protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": "p",
                "ssl_ca_location": "/ca.pem",
            },
            "does not use TLS",
        ),
        ({"protocol": "SSL", "ssl_certificate_location": "/c.pem"}, "needs both"),
        ({"protocol": "SSL", "ssl_key_password": "x"}, "without ssl_key_location"),
        (
            {"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"},
            "sasl_mechanism",
        ),
    ],
)
def test_half_configured_security_is_rejected(security: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings_of(security=security)


def test_security_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-256", "SASL_USERNAME": "svc",
                        "SASL_PASSWORD": SECRETS["sasl"], "SSL_CA_LOCATION": "/ca.pem"}.items():  # fmt: skip
        monkeypatch.setenv(f"TRADELOOP_SECURITY__{name}", value)
    config = producer_config(Settings())
    assert config["sasl.mechanism"] == "SCRAM-SHA-256" and config["sasl.password"] == SECRETS["sasl"]
    assert config["ssl.ca.location"] == "/ca.pem"


def test_settings_never_show_their_secrets() -> None:
    settings = settings_of(model_signing_key=SECRETS["signing"], security=SASL_SSL)
    shown = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump(mode="json")),
             repr(settings.security), str(settings.model_dump())]  # fmt: skip
    for text in shown:
        for secret in SECRETS.values():
            assert secret not in text
    assert settings.signing_key() == SECRETS["signing"].encode()  # still usable where it is needed


def test_cli_keeps_aiokafka_quiet_even_at_debug() -> None:
    """aiokafka's DEBUG request dump includes a SASL PLAIN token (user and password); the CLI caps it."""
    from tradeloop.cli import app

    names = ("", "aiokafka", "aiokafka.conn", "librdkafka")
    saved = {name: logging.getLogger(name).level for name in names}
    try:
        result = CliRunner().invoke(app, ["--log-level", "DEBUG", "topics", "--help"])
        assert result.exit_code == 0, result.output
        assert logging.getLogger("aiokafka.conn").getEffectiveLevel() >= logging.WARNING
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# -- the Faust stream worker ------------------------------------------------------------------------
@pytest.fixture()
def app_module() -> Any:
    return pytest.importorskip("agents.app")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA and a client certificate whose key is encrypted with ``SECRETS['key']``."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
                    "-subj", "/CN=tradeloop-unit-ca"], cwd=d, check=True, capture_output=True)  # fmt: skip
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", "client.key", "-out", "client.pem", "-days", "1",
                    "-subj", "/CN=tradeloop-unit-client", "-passout", f"pass:{SECRETS['key']}"],
                   cwd=d, check=True, capture_output=True)  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client.key"}


def test_faust_app_gets_tls_credentials_with_our_ca_and_client_key(
    tls_files: dict[str, Path], app_module: Any
) -> None:
    import faust

    security = {"protocol": "SSL", "ssl_ca_location": tls_files["ca"], "ssl_certificate_location": tls_files["cert"],
                "ssl_key_location": tls_files["key"], "ssl_key_password": SECRETS["key"]}  # fmt: skip
    credentials = app_module.create_app(
        settings_of(kafka_bootstrap="k1:9093", security=security)
    ).conf.broker_credentials
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    context: ssl.SSLContext = credentials.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [str(cert["subject"]) for cert in context.get_ca_certs()]
    assert any("tradeloop-unit-ca" in subject for subject in subjects)
    wrong = settings_of(kafka_bootstrap="k1:9093", security={**security, "ssl_key_password": "not-it"})
    with pytest.raises(ssl.SSLError):  # proves the key password above was the one that decrypted the key
        app_module.credentials(wrong)


@pytest.mark.parametrize(
    ("protocol", "mechanism"), [("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "PLAIN")]
)
def test_faust_app_gets_sasl_credentials(protocol: str, mechanism: str, app_module: Any) -> None:
    import faust

    security = {"protocol": protocol, "sasl_mechanism": mechanism, "sasl_username": "svc",
                "sasl_password": SECRETS["sasl"]}  # fmt: skip
    credentials = app_module.create_app(
        settings_of(kafka_bootstrap="k1:9093", security=security)
    ).conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == (protocol, mechanism)
    assert (credentials.username, credentials.password) == ("svc", SECRETS["sasl"])
    assert (credentials.ssl_context is not None) == (protocol == "SASL_SSL")
    assert SECRETS["sasl"] not in repr(credentials)


def test_faust_app_is_plaintext_without_security(app_module: Any) -> None:
    assert app_module.create_app(settings_of(kafka_bootstrap="k1:9092")).conf.broker_credentials is None


# -- no client bypasses the config builders ---------------------------------------------------------
def _client_calls_without_builder(path: Path) -> list[str]:
    """``Producer(...)``/``Consumer(...)``/``AdminClient(...)`` calls whose config is not from streams.kafka.config."""
    tree = ast.parse(path.read_text())
    built: set[str] = set()  # names assigned from a config builder anywhere in the module
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and _name(node.value) in CONFIG_BUILDERS
        ):
            built.update(t.id for t in node.targets if isinstance(t, ast.Name))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node) in KAFKA_CLIENTS:
            config = node.args[0] if node.args else None
            from_builder = isinstance(config, ast.Call) and _name(config) in CONFIG_BUILDERS
            if not (from_builder or (isinstance(config, ast.Name) and config.id in built)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return bad


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def test_every_kafka_client_in_the_packages_is_configured_from_settings() -> None:
    # The embedded broker's readiness probe is the one exception: it takes its security as ``extra``.
    allowed = {"streams/kafka/broker.py"}
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    bad = [
        hit
        for p in files
        if str(p.relative_to(ROOT)) not in allowed
        for hit in _client_calls_without_builder(p)
    ]
    assert not bad, (
        f"Kafka clients built without streams.kafka.config configs (security would not reach them): {bad}"
    )
    faust_apps = [str(p.relative_to(ROOT)) for p in files if "faust.App(" in p.read_text()]
    assert (
        faust_apps == ["agents/app.py"]
        and "broker_credentials=credentials(settings)" in (ROOT / "agents" / "app.py").read_text()
    )
    aiokafka_client = re.compile(r"AIOKafka(Consumer|Producer|AdminClient|Client)\(")
    assert not [p for p in files if aiokafka_client.search(p.read_text())], (
        "aiokafka clients must come from the Faust app"
    )
