"""tradeloop's base package: settings, contracts, codec, Kafka clients, broker launcher and engine SDK.

Nothing here imports ``agents`` or ``trainers``; both build on this package.
"""

__all__: list[str] = []
