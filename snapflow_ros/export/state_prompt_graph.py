# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The export side of PI05's state prompt: its graphs take the prompt's tokens as inputs.

The runner side (numpy + ``tokenizers``) is :mod:`snapflow_ros.export.prompt_tokens`; this module
reads what it needs from the LeRobot policy (its normaliser's statistics, its tokenizer) and
traces the prefix with the tokens as inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.base import FlowMatchingPolicy


def state_prompt_context(policy: FlowMatchingPolicy, observation: tuple[torch.Tensor, ...],
                          task: str):
    """PI05's prefix with the prompt's tokens and mask taken from the last two inputs.

    LeRobot's preprocessor runs without its state-into-prompt step (numpy, not traceable) on a
    placeholder state that nothing downstream reads; its tokens are then replaced by the inputs.
    """
    from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
    from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    *images, tokens, mask = observation
    robot = policy.robot
    rows = int(tokens.shape[0])
    batch = {"images": dict(zip(robot.camera_keys, images)),
             "state": torch.zeros(rows, len(robot.joint_names)), "task": [task] * rows}
    if robot.environment_state_names:
        batch["environment_state"] = torch.zeros(rows, len(robot.environment_state_names))
    pipeline = policy.preprocessor
    steps = pipeline.steps
    pipeline.steps = [step for step in steps
                      if not isinstance(step, Pi05PrepareStateTokenizerProcessorStep)]
    try:
        processed = policy.preprocess(batch)
    finally:
        pipeline.steps = steps
    processed = dict(processed, **{OBS_LANGUAGE_TOKENS: tokens,
                                   OBS_LANGUAGE_ATTENTION_MASK: mask})
    return policy.encode_preprocessed(processed)


def state_prompt_spec(policy: FlowMatchingPolicy, where: str):
    """The :class:`~snapflow_ros.export.prompt_tokens.StatePromptSpec` of a PI05 policy.

    Read from LeRobot's own preprocessor (its normaliser's q01 / q99 and eps, its tokenizer's
    max length and pad id), so the runner's prompt is the one the policy was trained on.
    """
    from lerobot.configs import NormalizationMode
    from lerobot.processor import NormalizerProcessorStep, TokenizerProcessorStep

    from snapflow_ros.export.prompt_tokens import StatePromptSpec

    mode = policy.lerobot_policy.config.normalization_mapping.get("STATE")
    if NormalizationMode(mode) != NormalizationMode.QUANTILES:
        raise ConfigError(f"{where}: PI05 export builds the prompt from a QUANTILES-normalised "
                          f"state; this policy normalises it with {mode}")
    steps = policy.preprocessor.steps
    normalizer = next(s for s in steps if isinstance(s, NormalizerProcessorStep))
    tokenizer = next(s for s in steps if isinstance(s, TokenizerProcessorStep))
    if tokenizer.padding_side != "right" or tokenizer.padding != "max_length":
        raise ConfigError(f"{where}: the PI05 tokenizer step pads {tokenizer.padding!r} on the "
                          f"{tokenizer.padding_side!r}; the export expects max_length, right")
    stats = normalizer.stats["observation.state"]
    return StatePromptSpec(
        q01=tuple(float(v) for v in np.asarray(stats["q01"], np.float32).ravel()),
        q99=tuple(float(v) for v in np.asarray(stats["q99"], np.float32).ravel()),
        max_length=int(tokenizer.max_length), pad_id=int(tokenizer.input_tokenizer.pad_token_id),
        eps=float(normalizer.eps))


def write_tokenizer(policy: FlowMatchingPolicy, folder: Path) -> Path:
    """Write the policy's fast tokenizer as ``folder/tokenizer.json`` (``tokenizers`` format)."""
    from lerobot.processor import TokenizerProcessorStep

    from snapflow_ros.export.prompt_tokens import TOKENIZER_FILE

    step = next(s for s in policy.preprocessor.steps if isinstance(s, TokenizerProcessorStep))
    path = folder / TOKENIZER_FILE
    step.input_tokenizer.backend_tokenizer.save(str(path))
    return path


def state_prompt_feeds(feeds: dict[str, np.ndarray], folder: Path, spec, task: str
                       ) -> dict[str, np.ndarray]:
    """``feeds`` plus the runner's prompt tokens of their state (the round trip's feeds)."""
    from snapflow_ros.export.prompt_tokens import StatePromptTokenizer

    state = feeds["state"]
    if "environment_state" in feeds:
        state = np.concatenate([state, feeds["environment_state"]], axis=1)
    return dict(feeds, **StatePromptTokenizer(folder, spec)(state, [task] * len(state)))
