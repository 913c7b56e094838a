"""Inference workers: verified hot-swap of signed ONNX models, sizing decisions, strategy weights.

``tradeloop infer`` runs :class:`agents.inference.worker.InferenceWorker`; ``docs/inference.md``
explains verification, hot swap, fallback, canary and guardrails.
"""
