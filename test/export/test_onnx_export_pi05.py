# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX export of a tiny PI05: the state enters as prompt tokens the runner builds itself."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("lerobot")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("tokenizers")
from lerobot.utils.constants import (  # noqa: E402
    OBS_LANGUAGE_ATTENTION_MASK,
    OBS_LANGUAGE_TOKENS,
)
from vla_fixtures import STATS, export_tiny_vla  # noqa: E402

from snapflow_ros.export.manifest import ExportFolderError, read_manifest  # noqa: E402
from snapflow_ros.export.onnx_export import (  # noqa: E402
    random_observation,
)
from snapflow_ros.export.onnx_runner import OnnxGraphs, OnnxPolicyRunner  # noqa: E402
from snapflow_ros.export.prompt_tokens import (  # noqa: E402
    StatePromptSpec,
    StatePromptTokenizer,
    load_tokenizer,
)
from snapflow_ros.snapflow.sampler import predict_action_chunk  # noqa: E402

pytestmark = pytest.mark.slow
TASK = "pick up the cube"


@pytest.fixture(scope="module")
def pi05_export(tmp_path_factory):
    return export_tiny_vla(tmp_path_factory.mktemp("pi05"), "pi05", TASK)


def _states(rows: int = 12) -> np.ndarray:
    """States over the whole bin range, some exactly on a bin edge, some outside [q01, q99]."""
    q01, q99 = np.asarray(STATS.state_q01), np.asarray(STATS.state_q99)
    rng = np.random.default_rng(3)
    fractions = rng.uniform(-0.1, 1.1, (rows, 3))
    fractions[0] = [0.0, 0.5, 1.0]  # -1, 0 and 1 after normalisation: bin edges
    fractions[1] = [1 / 256, 255 / 256, 128 / 256]
    return (q01 + fractions * (q99 - q01)).astype(np.float32)


def _batch(feeds, state, task):
    return {"images": {"top": torch.from_numpy(feeds["image_top"])},
            "state": torch.from_numpy(state), "task": [task] * len(state)}


def test_runner_tokens_equal_lerobots_processor_tokens(pi05_export):
    policy, folder, manifest = pi05_export
    spec = StatePromptSpec.from_dict(manifest["state_prompt"])
    assert (spec.bins, spec.max_length, spec.normalization) == (256, 24, "QUANTILES")
    tokenizer = StatePromptTokenizer(folder, spec)
    states = _states()
    feeds = random_observation(policy, len(states), np.random.default_rng(0))
    for task in (TASK, "  open_the drawer\n"):
        ours = tokenizer(states, [task] * len(states))
        with torch.no_grad():
            processed = policy.preprocess(_batch(feeds, states, task))
        np.testing.assert_array_equal(ours["prompt_tokens"],
                                      processed[OBS_LANGUAGE_TOKENS].numpy())
        np.testing.assert_array_equal(ours["prompt_mask"],
                                      processed[OBS_LANGUAGE_ATTENTION_MASK].numpy())
    # The tokens follow the state: rows with other bins get other tokens.
    assert len({tuple(row) for row in ours["prompt_tokens"]}) == len(states)


def test_pi05_graphs_match_torch_on_several_states(pi05_export):
    policy, folder, manifest = pi05_export
    check = manifest["round_trip"]["float32"]
    assert check["passed"], check
    assert [spec["name"] for spec in manifest["graphs"]["prefix"]["inputs"]] == [
        "image_top", "prompt_tokens", "prompt_mask"]
    runner = OnnxPolicyRunner(folder)
    graphs = OnnxGraphs(folder, read_manifest(folder))
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    noise = rng.standard_normal((1, policy.chunk_size, policy.action_dim), dtype=np.float32)
    chunks = []
    for state in _states(5):
        observation = type("Observation", (), {"images": {"top": image}, "state": state,
                                                "task": TASK})()
        feeds = runner.build_batch(observation)
        for steps in (1, 4):
            expected = predict_action_chunk(policy, _batch(feeds, state[None], TASK),
                                            num_steps=steps,
                                            noise=torch.from_numpy(noise)).numpy()
            actual = graphs.predict(feeds, noise, steps)
            scale = np.asarray(manifest["round_trip"]["action_range"])
            assert (np.abs(actual - expected) / scale).max() <= 1e-4
        chunks.append(actual)
    # Same image and noise, other states: other chunks (the state is not a constant).
    assert min(np.abs(a - b).max() for i, a in enumerate(chunks) for b in chunks[i + 1:]) > 1e-4


def test_pi05_runner_takes_the_observations_task(pi05_export):
    policy, folder, _ = pi05_export
    runner = OnnxPolicyRunner(folder, seed=0)
    state = _states(3)[2]
    image = np.zeros((48, 64, 3), np.uint8)
    asked = type("Observation", (), {"images": {"top": image}, "state": state,
                                      "task": "open the drawer"})()
    feeds = runner.build_batch(asked)
    with torch.no_grad():
        processed = policy.preprocess(_batch(feeds, state[None], "open the drawer"))
    np.testing.assert_array_equal(feeds["prompt_tokens"], processed[OBS_LANGUAGE_TOKENS].numpy())
    assert np.isfinite(runner.infer(asked, 2).actions).all()


def test_missing_tokenizers_package_names_the_extra(pi05_export, monkeypatch):
    _, folder, _ = pi05_export
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ExportFolderError, match=r"snapflow_ros\[onnx\]"):
        load_tokenizer(folder / "tokenizer.json")


def test_an_export_without_its_tokenizer_is_refused(pi05_export, tmp_path):
    import shutil

    _, folder, _ = pi05_export
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "tokenizer.json").write_text("{}")
    with pytest.raises(ExportFolderError, match="tokenizer.json: contents differ"):
        read_manifest(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ExportFolderError, match="tokenizer is missing"):
        OnnxPolicyRunner(copy)
