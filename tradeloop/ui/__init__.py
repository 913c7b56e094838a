"""What the CLI shows: pure functions from data to rich renderables or JSON text.

Nothing here reads Kafka, files or processes, so each view is tested with fabricated inputs.
"""
