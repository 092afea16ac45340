# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training: the teacher (flow matching) and SnapFlow stages, with resumable checkpoints.

``from snapflow_ros.training import run_training, TrainConfig`` works; the trainer (and torch)
is imported only when ``run_training`` or ``TrainResult`` is first used.
"""

from snapflow_ros.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "run_training"]


def __getattr__(name: str):
    if name in ("run_training", "TrainResult"):
        from snapflow_ros.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
