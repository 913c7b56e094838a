"""Errors of the inference workers."""

from __future__ import annotations

from streams.errors import TradeloopError

__all__ = ["ModelRejectedError"]


class ModelRejectedError(TradeloopError):
    """A model update that must not serve.

    Attributes:
        reason: one of :data:`streams.serving.constants.REJECTION_REASONS`.
        model_name: the model the update was for ("" when the record itself is unreadable).
        version: the update's version ("" when unknown).
    """

    def __init__(self, reason: str, detail: str, model_name: str = "", version: str = "") -> None:
        super().__init__(f"model update {model_name or '?'}:{version or '?'} rejected: {reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.model_name = model_name
        self.version = version
