"""The trainer's durable data: the SQLite stores (replay, allocation periods), their ingestion from
Kafka, the training log and the replay store's data export.

Nothing here imports Ray, torch or a model kind's training code.
"""
