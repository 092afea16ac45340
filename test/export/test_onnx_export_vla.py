# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX export of a tiny SmolVLA: the prompt traced as constants, graphs that match PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("lerobot")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from vla_fixtures import ROBOT, build_vla, export_tiny_vla, write_backbones  # noqa: E402

from snapflow_ros.config_fields import ConfigError  # noqa: E402
from snapflow_ros.export.manifest import read_manifest  # noqa: E402
from snapflow_ros.export.onnx_export import (  # noqa: E402
    OnnxExportConfig,
    export_policy_onnx,
    random_observation,
)
from snapflow_ros.export.onnx_runner import OnnxGraphs, OnnxPolicyRunner  # noqa: E402
from snapflow_ros.snapflow.sampler import predict_action_chunk  # noqa: E402

pytestmark = pytest.mark.slow
TASK = "pick up the cube"


@pytest.fixture(scope="module")
def smolvla_export(tmp_path_factory):
    return export_tiny_vla(tmp_path_factory.mktemp("smolvla"), "smolvla", TASK)


def _batch(feeds, task):
    return {"images": {"top": torch.from_numpy(feeds["image_top"])},
            "state": torch.from_numpy(feeds["state"]), "task": [task] * len(feeds["state"])}


def test_smolvla_graphs_match_torch_for_1_and_4_steps(smolvla_export):
    policy, folder, manifest = smolvla_export
    assert manifest["task"] == TASK and manifest["round_trip"]["float32"]["passed"]
    graphs = OnnxGraphs(folder, read_manifest(folder))
    rng = np.random.default_rng(7)
    feeds = random_observation(policy, 1, rng)
    noise = rng.standard_normal((1, policy.chunk_size, policy.action_dim), dtype=np.float32)
    for steps in (1, 4):
        expected = predict_action_chunk(policy, _batch(feeds, TASK), num_steps=steps,
                                        noise=torch.from_numpy(noise)).numpy()
        np.testing.assert_allclose(graphs.predict(feeds, noise, steps), expected, rtol=0,
                                   atol=1e-5)
    # The prompt matters to the model: another task gives another chunk in torch.
    other = predict_action_chunk(policy, _batch(feeds, "open the drawer"),
                                 noise=torch.from_numpy(noise)).numpy()
    assert np.abs(other - graphs.predict(feeds, noise)).max() > 1e-4


def test_smolvla_export_runs_where_transformers_and_torch_cannot_be_imported(smolvla_export):
    _, folder, _ = smolvla_export
    code = textwrap.dedent(f"""
        import sys
        class Blocked:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "lerobot", "transformers"):
                    raise ImportError(f"{{name}} is blocked in this test")
        sys.meta_path.insert(0, Blocked())
        import json, types
        import numpy as np
        from snapflow_ros.export.onnx_runner import OnnxPolicyRunner
        runner = OnnxPolicyRunner({str(folder)!r}, seed=0)
        observation = types.SimpleNamespace(images={{"top": np.zeros((48, 64, 3), np.uint8)}},
                                            state=np.zeros(3), task={TASK!r})
        actions = runner.infer(observation, 2).actions
        print(json.dumps({{"shape": list(actions.shape),
                          "finite": bool(np.isfinite(actions).all())}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    assert reply == {"shape": [8, len(ROBOT.action_names)], "finite": True}


def test_another_task_is_refused_and_vlas_need_a_fixed_batch(smolvla_export, tmp_path):
    policy, folder, _ = smolvla_export
    runner = OnnxPolicyRunner(folder)
    blank = {"top": np.zeros((48, 64, 3), np.uint8)}
    observation = type("Observation", (), {"images": blank, "state": np.zeros(3),
                                            "task": "open the drawer"})()
    with pytest.raises(ValueError, match="made for the task 'pick up the cube'"):
        runner.infer(observation)
    with pytest.raises(ConfigError, match="--batch N"):
        export_policy_onnx(policy, tmp_path / "dynamic", OnnxExportConfig(batch_size=0))


def test_pi0_exports_within_tolerance(tmp_path):
    # PI05 has its own module (test_onnx_export_pi05): its state enters as prompt tokens.
    backbones = write_backbones(tmp_path)
    manifest = export_policy_onnx(build_vla("pi0", backbones).eval(), tmp_path / "pi0",
                                  OnnxExportConfig(task=TASK), log=lambda line: None)
    check = manifest["round_trip"]["float32"]
    assert check["passed"] and check["max_abs_error"] < 1e-5
