"""The sizer model kind: its env, run data, sampling, pipeline, evaluation, export and its track
in the trainer loop (docs/trainer.md)."""
