"""Kafka plumbing: client configs, the producer and consumer every process uses, topic admin,
offsets, Kafka's default partitioner, and the embedded broker launcher (Tansu)."""
