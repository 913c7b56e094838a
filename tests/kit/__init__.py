"""What unit tests, integration tests and benchmarks share: builders, harnesses, bus readers."""
