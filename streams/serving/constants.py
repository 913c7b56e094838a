"""Model names, fallback reasons and rejection reasons: one place, so a rename is one edit."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALLOCATOR",
    "COMPONENT",
    "FALLBACK_REASONS",
    "KILL_SWITCH",
    "MISSING_FEATURES",
    "MODEL_ERROR",
    "NO_MODEL",
    "REJECTED_MODEL",
    "REJECTION_REASONS",
    "RULE_MODEL_NAME",
    "SERVE",
    "SHADOW",
    "SIZER",
    "STRATEGY_MISMATCH",
]

# The heartbeat component of every serving process (inference workers and engines' in-process
# sizers alike): `tradeloop status`, `tradeloop control versions` and RolloutWatcher read these.
COMPONENT: Final = "inference"

SIZER: Final = "sizer"
ALLOCATOR: Final = "allocator"
RULE_MODEL_NAME: Final = "rule"

# ModelUpdate roles (schemas/ModelUpdate.avsc).
SERVE: Final = "SERVE"
SHADOW: Final = "SHADOW"

# Why the fallback answered (SizingDecision.fallback_reason, StrategyWeights.fallback_reason).
NO_MODEL: Final = "no_model"
REJECTED_MODEL: Final = "rejected_model"
MISSING_FEATURES: Final = "missing_features"
KILL_SWITCH: Final = "kill_switch"
MODEL_ERROR: Final = "model_error"
STRATEGY_MISMATCH: Final = "strategy_mismatch"
FALLBACK_REASONS: Final = (
    NO_MODEL,
    REJECTED_MODEL,
    MISSING_FEATURES,
    KILL_SWITCH,
    MODEL_ERROR,
    STRATEGY_MISMATCH,
)

# Why a model update was rejected (tradeloop_inference_rejections_total{reason}). The first four
# come from streams.manifest.verify_update.
REJECTION_REASONS: Final = (
    "unsigned",
    "bad_signature",
    "bad_manifest",
    "checksum_mismatch",
    "spec_mismatch",
    "oversized",
    "bad_onnx",
    "bad_record",
    "unknown_model",
)
