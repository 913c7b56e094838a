"""The config base every settings section derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A frozen settings section that rejects unknown keys (a typo is an error, not a default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
