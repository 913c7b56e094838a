"""Topic administration: create every tradeloop topic idempotently, list them.

Works on Tansu and Apache Kafka. Tansu ignores DescribeConfigs (DESIGN.md section 3), so
creation passes configs at create time and never depends on reading them back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.errors import BrokerError
from streams.kafka.config import admin_config
from streams.settings import Settings
from streams.topics import ALL_TOPICS, TopicSpec

__all__ = ["TopicState", "create_topics", "list_topics"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicState:
    name: str
    partitions: int
    exists: bool
    created: bool = False


def _new_topic(settings: Settings, spec: TopicSpec) -> NewTopic:
    if spec.single_partition:
        partitions = 1
    elif spec.sizing_path:
        partitions = settings.inference.sizing_partitions
    else:
        partitions = settings.partitions
    return NewTopic(
        settings.topic(spec.name),
        num_partitions=partitions,
        replication_factor=settings.replication_factor,
        config=dict(spec.configs),
    )


def create_topics(
    settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS, timeout: float = 30.0
) -> list[TopicState]:
    """Create the topics that do not exist yet; existing ones are left as they are.

    Raises:
        BrokerError: the broker is unreachable or refused a creation for another reason.
    """
    errors: list[KafkaError] = []
    config = admin_config(settings)
    # A transport failure only says "Broker transport failure"; the cause (e.g. a TLS handshake
    # failure) arrives on the error callback.
    config["error_cb"] = errors.append
    admin = AdminClient(config)
    wanted = [_new_topic(settings, spec) for spec in specs]
    futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
    states: list[TopicState] = []
    for topic in wanted:
        try:
            futures[topic.topic].result(timeout=timeout)
            states.append(TopicState(topic.topic, topic.num_partitions, exists=True, created=True))
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                states.append(TopicState(topic.topic, topic.num_partitions, exists=True))
                continue
            admin.poll(0.1)
            cause = f" ({errors[0]})" if errors else ""
            raise BrokerError(f"cannot create topic {topic.topic}: {error}{cause}") from exc
    _wait_visible(admin, [t.topic for t in wanted], timeout)
    return states


def _wait_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Block until metadata lists every topic with its leaders, so producers never race creation."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5.0).topics
        if all(n in topics and topics[n].error is None and topics[n].partitions for n in names):
            return
        time.sleep(0.1)
    raise BrokerError(f"topics not visible in metadata after {timeout:.0f}s")


def list_topics(settings: Settings, timeout: float = 10.0) -> list[TopicState]:
    """Every tradeloop topic with its partition count, and whether it exists."""
    try:
        topics = AdminClient(admin_config(settings)).list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics at {settings.bootstrap}: {exc.args[0]}") from exc
    states = []
    for spec in ALL_TOPICS:
        name = settings.topic(spec.name)
        meta = topics.get(name)
        states.append(TopicState(name, len(meta.partitions) if meta else 0, exists=meta is not None))
    return states
