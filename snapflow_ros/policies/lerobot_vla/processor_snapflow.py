# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pre/post-processors of the ``snapflow_*`` LeRobot policy types: LeRobot's own, unchanged.

LeRobot looks these factories up by name (``make_<type>_pre_post_processors`` in the sibling
``processor_*`` module). SmolVLA's factory is used as it is (its tokenizer comes from the config's
``vlm_model_name``). PI0 / PI05's factories hard-code the gated PaliGemma tokenizer; here they run
with that one name replaced by the config's ``tokenizer_name`` (a local folder offline), so every
step, its order and its saved form stay LeRobot's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from lerobot.policies.pi0 import processor_pi0
from lerobot.policies.pi05 import processor_pi05
from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors
from lerobot.processor import TokenizerProcessorStep

from snapflow_ros.policies.lerobot_vla.configuration_snapflow import (
    PALIGEMMA_TOKENIZER,
    SnapFlowPI0Config,
    SnapFlowPI05Config,
    SnapFlowSmolVLAConfig,
)

_factory_lock = threading.Lock()


@contextlib.contextmanager
def _tokenizer_from(module: ModuleType, tokenizer_name: str) -> Iterator[None]:
    """Within the block, ``module`` builds its tokenizer step from ``tokenizer_name``."""

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


def make_snapflow_smolvla_pre_post_processors(
    config: SnapFlowSmolVLAConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    """LeRobot's SmolVLA processors (normalise, tokenise, device; unnormalise)."""
    return make_smolvla_pre_post_processors(config, dataset_stats)


def make_snapflow_pi0_pre_post_processors(
    config: SnapFlowPI0Config,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    """LeRobot's PI0 processors, tokenising with ``config.tokenizer_name``."""
    with _tokenizer_from(processor_pi0, config.tokenizer_name):
        return processor_pi0.make_pi0_pre_post_processors(config, dataset_stats)


def make_snapflow_pi05_pre_post_processors(
    config: SnapFlowPI05Config,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    """LeRobot's PI05 processors (state in the prompt), tokenising with the config's tokenizer."""
    with _tokenizer_from(processor_pi05, config.tokenizer_name):
        return processor_pi05.make_pi05_pre_post_processors(config, dataset_stats)
