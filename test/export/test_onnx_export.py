# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow export onnx``: graphs that match PyTorch, a self-contained folder, clean failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from onnx_fixtures import CAMERAS, CHUNK, ENVIRONMENT, IMAGE_SIZE, JOINTS

from snapflow_ros import cli
from snapflow_ros.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from snapflow_ros.export.manifest import ExportFolderError, file_sha256, read_manifest
from snapflow_ros.export.onnx_export import random_observation
from snapflow_ros.export.onnx_runner import OnnxGraphs
from snapflow_ros.snapflow.sampler import predict_action_chunk

pytestmark = pytest.mark.slow
# The onnx extra (setup.py): without it there is nothing to test here.
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _inputs(policy, rows: int, seed: int):
    rng = np.random.default_rng(seed)
    feeds = random_observation(policy, rows, rng)
    noise = rng.standard_normal((rows, CHUNK, len(JOINTS)), dtype=np.float32)
    batch = {"images": {key: torch.from_numpy(feeds[f"image_{key}"]) for key in CAMERAS},
             "state": torch.from_numpy(feeds["state"]),
             "environment_state": torch.from_numpy(feeds["environment_state"])}
    return feeds, noise, batch


def _torch_chunk(policy, batch, noise, steps, mode):
    return predict_action_chunk(policy, batch, num_steps=steps, mode=mode,
                                noise=torch.from_numpy(noise)).numpy()


def test_export_succeeds_and_prints_the_round_trip_errors(exported):
    assert exported["code"] == EXIT_OK, exported["stdout"]
    printed = exported["stdout"]
    assert "round trip float32: max |ORT - torch|" in printed and ": ok" in printed
    assert "round trip int8: max |ORT - torch|" in printed


def test_one_step_graph_matches_torch_within_1e_5_at_several_batch_sizes(exported,
                                                                          reference_policy):
    manifest = read_manifest(exported["folder"])
    graphs = OnnxGraphs(exported["folder"], manifest)
    for rows, seed in ((1, 11), (3, 12)):
        feeds, noise, batch = _inputs(reference_policy, rows, seed)
        expected = _torch_chunk(reference_policy, batch, noise, 1, "jump")
        actual = graphs.one_step(feeds, noise)
        assert actual.shape == (rows, CHUNK, len(JOINTS))
        # The chunk is far from the noise: the graph really computes something.
        assert np.abs(expected - noise).max() > 0.05
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["jump", "euler"])
def test_four_steps_through_prefix_and_expert_graphs_match_torch(exported, reference_policy,
                                                                 mode):
    graphs = OnnxGraphs(exported["folder"], read_manifest(exported["folder"]))
    feeds, noise, batch = _inputs(reference_policy, 2, 21)
    expected = _torch_chunk(reference_policy, batch, noise, 4, mode)
    np.testing.assert_allclose(graphs.predict(feeds, noise, 4, mode), expected, rtol=0,
                               atol=1e-5)
    # Four steps land elsewhere than one: the k-step path is not the fused graph in disguise.
    assert np.abs(expected - _torch_chunk(reference_policy, batch, noise, 1, "jump")).max() > 1e-3


def test_manifest_makes_the_folder_self_contained(exported):
    manifest = read_manifest(exported["folder"])
    checkpoint = exported["checkpoint"]
    assert manifest["policy_type"] == "compact" and manifest["chunk_size"] == CHUNK
    assert manifest["robot"]["environment_state_names"] == list(ENVIRONMENT)
    assert manifest["source_checkpoint"]["weights_sha256"] == file_sha256(
        checkpoint / "model.safetensors")
    assert manifest["normalization"] == json.loads(
        (checkpoint / "normalization.json").read_text())
    inputs = {spec["name"]: spec for spec in manifest["graphs"]["one_step"]["inputs"]}
    assert inputs["image_top"]["shape"] == ["batch", 3, IMAGE_SIZE, IMAGE_SIZE]
    assert inputs["image_wrist"]["dtype"] == "uint8"
    assert inputs["state"] == {"name": "state", "role": "state", "shape": ["batch", 3],
                               "dtype": "float32", "names": list(JOINTS)}
    assert inputs["environment_state"]["shape"] == ["batch", 2]
    assert inputs["noise"]["shape"] == ["batch", CHUNK, 3]
    assert manifest["graphs"]["one_step"]["outputs"][0]["names"] == list(JOINTS)
    assert manifest["round_trip"]["float32"]["max_abs_error"] < 1e-5
    assert manifest["opset"] == 18


def test_int8_graphs_run_and_their_error_is_finite_and_recorded(exported, reference_policy):
    manifest = read_manifest(exported["folder"])
    int8 = manifest["round_trip"]["int8"]
    assert int8["finite"] and 0 < int8["max_abs_error"] < 1.0
    graphs = OnnxGraphs(exported["folder"], manifest, precision="int8")
    feeds, noise, batch = _inputs(reference_policy, 2, 31)
    expected = _torch_chunk(reference_policy, batch, noise, 1, "jump")
    actual = graphs.predict(feeds, noise)
    assert np.all(np.isfinite(actual))
    # Quantised, not equal, but the same chunk to within a few percent of the action range.
    assert 0 < np.abs(actual - expected).max() < 0.1
    size = {p: (exported["folder"] / manifest["graphs"]["expert"]["files"][p]["file"]).stat()
            .st_size for p in ("float32", "int8")}
    assert size["int8"] < size["float32"]


def test_fixed_batch_export_above_tolerance_exits_1_and_runners_refuse_it(random_checkpoint,
                                                                          tmp_path, capsys):
    out = tmp_path / "strict"
    # No float32 graph matches PyTorch bit for bit: a zero tolerance must fail the export.
    code = cli.main(["export", "onnx", "--checkpoint", str(random_checkpoint), "--out",
                     str(out), "--batch", "2", "--tolerance", "0"])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    assert "ABOVE TOLERANCE" in captured.out and "do not match PyTorch" in captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graphs"]["one_step"]["inputs"][0]["shape"][0] == 2
    with pytest.raises(ExportFolderError, match="did not match PyTorch"):
        read_manifest(out)


def test_bad_input_exits_2_naming_it_and_writes_nothing(exported, tmp_path, capsys):
    missing = tmp_path / "nothing_here"
    assert cli.main(["export", "onnx", "--checkpoint", str(missing), "--out",
                     str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert cli.main(["export", "onnx", "--checkpoint", str(exported["checkpoint"]), "--out",
                     str(exported["folder"])]) == EXIT_BAD_INPUT
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", "onnx", "--checkpoint", "x", "--out", "y", "--batch", "0"])


def test_weights_can_live_beside_the_graphs_as_external_data(random_checkpoint, tmp_path,
                                                             reference_policy):
    from snapflow_ros.export.onnx_export import OnnxExportConfig, export_onnx

    out = tmp_path / "external"
    manifest = export_onnx(random_checkpoint, out, OnnxExportConfig(
        external_data="always", quantize="dynamic", batch_size=2), log=lambda line: None)
    entry = manifest["graphs"]["expert"]["files"]
    assert (out / entry["float32"]["data_file"]).stat().st_size == entry["float32"]["data_bytes"]
    assert "data_file" in entry["int8"]
    assert manifest["round_trip"]["float32"]["passed"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("expert")) == [
        "expert.int8.onnx", "expert.int8.onnx.data", "expert.onnx", "expert.onnx.data"]
    feeds, noise, batch = _inputs(reference_policy, 2, 41)
    graphs = OnnxGraphs(out, read_manifest(out))
    np.testing.assert_allclose(graphs.predict(feeds, noise, 4),
                               _torch_chunk(reference_policy, batch, noise, 4, "jump"),
                               rtol=0, atol=1e-5)
    data = out / entry["float32"]["data_file"]
    data.write_bytes(data.read_bytes()[:-8])
    with pytest.raises(ExportFolderError, match="expert.onnx.data: external weights"):
        read_manifest(out)
