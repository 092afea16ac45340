# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pre/post-processors of the ``snapflow_*`` LeRobot policy types: LeRobot's own, unchanged.

LeRobot looks each type's factory up by name (``make_<type>_pre_post_processors`` in the
``processor_<name>`` module beside its config, one per backend folder). SmolVLA's factory is
used as it is (its tokenizer comes from the config's ``vlm_model_name``). PI0 / PI05's factories
hard-code the gated PaliGemma tokenizer; they run inside :func:`tokenizer_from`, with that one
name replaced by the config's ``tokenizer_name`` (a local folder offline), so every step, its
order and its saved form stay LeRobot's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from lerobot.processor import TokenizerProcessorStep

from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import PALIGEMMA_TOKENIZER
from snapflow_ros.policies.normalization import NormalizationStats

_factory_lock = threading.Lock()


@contextlib.contextmanager
def tokenizer_from(module: ModuleType, tokenizer_name: str) -> Iterator[None]:
    """Within the block, LeRobot's processor ``module`` tokenises with ``tokenizer_name``.

    It replaces the PaliGemma tokenizer LeRobot hard-codes (gated on the hub).
    """

    def local_tokenizer_step(**kwargs: Any) -> TokenizerProcessorStep:
        if kwargs.get("tokenizer_name") == PALIGEMMA_TOKENIZER:
            kwargs["tokenizer_name"] = tokenizer_name
        return TokenizerProcessorStep(**kwargs)

    # The module global is swapped only while the factory runs, under a lock.
    with _factory_lock:
        module.TokenizerProcessorStep = local_tokenizer_step
        try:
            yield
        finally:
            module.TokenizerProcessorStep = TokenizerProcessorStep


def lerobot_dataset_stats(stats: NormalizationStats) -> dict[str, dict[str, torch.Tensor]]:
    """Our statistics (mean / std; min / max / q01 / q99 where present) as ``dataset_stats``."""
    def tensors(prefix: str) -> dict[str, torch.Tensor]:
        return {kind: torch.tensor(list(map(float, values)), dtype=torch.float32)
                for kind, values in stats.lerobot_stats(prefix).items()}

    state = tensors("state")
    if stats.environment_state_dim:
        # The environment state follows the joints in LeRobot's one state vector.
        environment = tensors("environment_state")
        state = {kind: torch.cat([values, environment[kind]]) for kind, values in state.items()
                 if kind in environment}
    return {"observation.state": state, "action": tensors("action")}


def load_processors(folder: str | Path, config: Any, *,
                    device: str | None = None) -> tuple[Any, Any]:
    """LeRobot's saved pre/post-processors of checkpoint ``folder``, offline.

    The tokenizer step loads from ``config`` (``tokenizer_name`` for PI0 / PI05, the SmolVLM
    folder for SmolVLA) instead of the path recorded at training time; ``device`` overrides
    the device step. Same as ``make_pre_post_processors(config, pretrained_path=folder,
    preprocessor_overrides=...)`` with those overrides.
    """
    from lerobot.policies.factory import make_pre_post_processors

    tokenizer = getattr(config, "tokenizer_name", None) or config.vlm_model_name
    overrides: dict[str, Any] = {"tokenizer_processor": {"tokenizer_name": str(tokenizer)}}
    if device is not None:
        overrides["device_processor"] = {"device": device}
    return make_pre_post_processors(config, pretrained_path=str(folder),
                                    preprocessor_overrides=overrides)


def lerobot_processors(lerobot_config: Any, stats: NormalizationStats | None,
                       processor_dir: Path | None) -> tuple[Any, Any]:
    """The processors of a LeRobot policy: from ``stats``, else saved in ``processor_dir``."""
    from lerobot.policies.factory import make_pre_post_processors

    if stats is None and processor_dir is not None and (
            processor_dir / "policy_preprocessor.json").is_file():
        return load_processors(processor_dir, lerobot_config, device=lerobot_config.device)
    return make_pre_post_processors(lerobot_config,
                                    dataset_stats=lerobot_dataset_stats(stats))
