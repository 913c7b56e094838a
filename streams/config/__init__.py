"""Per-component settings sections, composed into :class:`streams.settings.Settings`.

Each component owns one module here so its knobs live beside each other. Every section is a
frozen pydantic model; set a field from the environment with ``TRADELOOP_<SECTION>__<FIELD>``,
e.g. ``TRADELOOP_TRAINER__MIN_NEW_EXPERIENCES=500``.
"""
