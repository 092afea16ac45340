# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""PI05's prompt, built outside the graphs: normalised state -> 256 bins -> text -> token ids.

LeRobot's PI05 preprocessor (``Pi05PrepareStateTokenizerProcessorStep`` then
``TokenizerProcessorStep``) writes the state into the language prompt, so the token ids depend on
the state and cannot be constants of a traced graph. A PI05 export therefore takes the tokens as
graph inputs (``prompt_tokens`` int64 ``(B, L)``, ``prompt_mask`` bool ``(B, L)``), and a runner
builds them here exactly as LeRobot does:

1. ``state`` (the joints, then the environment state, as LeRobot's one state vector) is
   normalised with QUANTILES: ``2 (x - q01) / (q99 - q01) - 1`` in float32;
2. discretised: ``digitize(x, linspace(-1, 1, 257)[:-1]) - 1`` (-1 below -1, 255 from
   1 - 2/256 up, as in LeRobot);
3. written as ``"Task: {task}, State: {bins};\nAction: "`` (task stripped, ``_`` and newlines
   as spaces, bins separated by spaces);
4. tokenised with the export's ``tokenizer.json`` (the policy's fast tokenizer, special tokens
   added), padded on the right with the pad id and truncated to ``max_length``.

Numpy and the ``tokenizers`` wheel only (no torch, no transformers): a robot computer with the
``onnx`` extra runs it. The manifest records everything here under ``state_prompt``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapflow_ros.export.manifest import ExportFolderError

PROMPT_TEMPLATE = "Task: {task}, State: {state};\nAction: "
"""LeRobot's PI05 prompt (``processor_pi05``, after openpi's ``PaligemmaTokenizer``)."""
STATE_BINS = 256
TOKENIZER_FILE = "tokenizer.json"
PROMPT_INPUTS = ("prompt_tokens", "prompt_mask")
"""The graph inputs that replace the state in a PI05 export."""


@dataclasses.dataclass(frozen=True)
class StatePromptSpec:
    """How a state becomes prompt tokens; the manifest's ``state_prompt`` entry.

    ``q01`` / ``q99``: the QUANTILES statistics of the state vector ``(S + E,)`` (joints, then
    environment state); ``eps`` replaces a zero ``q99 - q01`` as LeRobot's normaliser does.
    """

    q01: tuple[float, ...]
    q99: tuple[float, ...]
    max_length: int
    pad_id: int
    eps: float = 1e-8
    bins: int = STATE_BINS
    template: str = PROMPT_TEMPLATE
    normalization: str = "QUANTILES"
    padding_side: str = "right"
    tokenizer_file: str = TOKENIZER_FILE
    state_inputs: tuple[str, ...] = ("state", "environment_state")
    outputs: tuple[str, ...] = PROMPT_INPUTS

    def to_dict(self) -> dict:
        """JSON-safe form for the manifest."""
        return {field.name: (list(value) if isinstance(value, tuple) else value)
                for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatePromptSpec:
        """From the manifest's ``state_prompt`` mapping."""
        names = {field.name for field in dataclasses.fields(cls)}
        values = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in data.items() if key in names}
        spec = cls(**values)
        if spec.normalization != "QUANTILES" or spec.padding_side != "right":
            raise ExportFolderError(f"state_prompt: normalization {spec.normalization!r}, "
                                    f"padding {spec.padding_side!r}; this package builds "
                                    "QUANTILES prompts padded on the right")
        return spec


def normalized_state(state: np.ndarray, spec: StatePromptSpec) -> np.ndarray:
    """QUANTILES-normalised state ``(B, S + E)`` float32 (float32 arithmetic, as LeRobot's)."""
    state = np.asarray(state, dtype=np.float32)
    q01 = np.asarray(spec.q01, dtype=np.float32)
    denom = np.asarray(spec.q99, dtype=np.float32) - q01
    denom = np.where(denom == 0, np.float32(spec.eps), denom)
    return np.float32(2.0) * (state - q01) / denom - np.float32(1.0)


def state_bins(normalized: np.ndarray, bins: int = STATE_BINS) -> np.ndarray:
    """Bin index ``(B, S + E)`` of each normalised value: 0 .. bins - 1, and -1 below -1."""
    return np.digitize(normalized, bins=np.linspace(-1, 1, bins + 1)[:-1]) - 1


def state_prompts(tasks: Sequence[str], binned: np.ndarray,
                  template: str = PROMPT_TEMPLATE) -> list[str]:
    """One prompt string per row: the cleaned task and the row's bins."""
    prompts = []
    for task, row in zip(tasks, binned):
        cleaned = task.strip().replace("_", " ").replace("\n", " ")
        prompts.append(template.format(task=cleaned, state=" ".join(map(str, row))))
    return prompts


def load_tokenizer(path: str | Path) -> Any:
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json``; a clear error without the wheel."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ExportFolderError(
            "a PI05 export tokenises its prompt at run time and needs the `tokenizers` package: "
            "pip install 'snapflow_ros[onnx]' (or pip install tokenizers)") from exc
    path = Path(path)
    if not path.is_file():
        raise ExportFolderError(f"{path}: the export's tokenizer is missing")
    return Tokenizer.from_file(str(path))


class StatePromptTokenizer:
    """State and task -> ``prompt_tokens`` ``(B, L)`` int64 and ``prompt_mask`` ``(B, L)`` bool."""

    def __init__(self, folder: str | Path, spec: StatePromptSpec) -> None:
        self.spec = spec
        self.tokenizer = load_tokenizer(Path(folder) / spec.tokenizer_file)
        self.tokenizer.enable_truncation(max_length=spec.max_length)
        self.tokenizer.enable_padding(direction="right", pad_id=spec.pad_id,
                                      length=spec.max_length)

    def __call__(self, state: np.ndarray, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        """The prompt feeds of ``state`` ``(B, S + E)`` (robot units) and one task per row."""
        state = np.atleast_2d(np.asarray(state, dtype=np.float32))
        if state.shape[1] != len(self.spec.q01):
            raise ValueError(f"state of {state.shape[1]} values, the prompt reads "
                             f"{len(self.spec.q01)} (joints, then environment state)")
        if len(tasks) != state.shape[0]:
            raise ValueError(f"{len(tasks)} tasks for {state.shape[0]} state rows")
        prompts = state_prompts(tasks, state_bins(normalized_state(state, self.spec),
                                                  self.spec.bins), self.spec.template)
        encodings = self.tokenizer.encode_batch(prompts)
        return {"prompt_tokens": np.array([e.ids for e in encodings], dtype=np.int64),
                "prompt_mask": np.array([e.attention_mask for e in encodings], dtype=bool)}
