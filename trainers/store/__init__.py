"""The trainer's durable data.

The SQLite stores (replay, allocation periods), their ingestion from Kafka, the training log and
the replay store's data export. Nothing here imports Ray or torch.
"""
