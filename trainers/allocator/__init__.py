"""The allocator model kind: its env, training pairs, pipeline, evaluation, export, weight history
and its track in the trainer loop (docs/allocator.md)."""
