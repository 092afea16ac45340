# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow eval --export DIR --backend ...``: an ONNX export scored beside its checkpoint."""

import json

import numpy as np
import pytest
from evaluation_fixtures import run_cli

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
FAST = ["--samples", "12", "--spread-seeds", "0", "--samples-per-frame", "2",
        "--latency-calls", "1", "--no-progress", "--steps", "1,2", "--modes", "jump"]


@pytest.fixture(scope="module")
def snap_export(trained_runs, tmp_path_factory):
    """The SnapFlow run exported with the default fixed batch of 1 and int8 graphs."""
    folder = tmp_path_factory.mktemp("eval_export") / "snap_onnx"
    code, _, stderr = run_cli(["export", "onnx", "--checkpoint", str(trained_runs["snap"]),
                               "--out", str(folder), "--quantize", "dynamic"])
    assert code == 0, stderr
    return folder


def _eval(tmp_path, argv):
    out = tmp_path / "eval.json"
    code, stdout, stderr = run_cli(["eval", *argv, "--json", str(out), *FAST])
    assert code == 0, stderr
    return json.loads(out.read_text()), stdout


def test_onnxruntime_export_scores_as_its_checkpoint_and_int8_is_named(
        trained_runs, snap_export, tmp_path):
    result, stdout = _eval(tmp_path, ["--checkpoint", f"S={trained_runs['snap']}",
                                      "--export", f"X={snap_export}",
                                      "--export", f"Q={snap_export}@int8"])
    torch_entry, export_entry = result["checkpoints"]["S"], result["checkpoints"]["X"]
    assert (torch_entry["backend"], export_entry["backend"]) == ("torch", "onnxruntime")
    assert export_entry["precision"] == "float32" and export_entry["stage"] == "snapflow"
    for key in ("1", "2"):
        # Same frames, same noise: the float32 graphs give the checkpoint's errors.
        np.testing.assert_allclose(export_entry["results"][key]["per_sample_mse"],
                                   torch_entry["results"][key]["per_sample_mse"], rtol=1e-3,
                                   atol=1e-7)
        assert export_entry["results"][key]["best_of_k_mse_mean"] == pytest.approx(
            torch_entry["results"][key]["best_of_k_mse_mean"], rel=1e-3)
    assert "| X (onnxruntime float32) | snapflow | 1 | jump |" in stdout
    # @int8: the same folder's int8 graphs in the same run, named as such.
    assert result["checkpoints"]["Q"]["precision"] == "int8"
    quantised = result["checkpoints"]["Q"]["results"]["1"]["per_sample_mse"]
    exact = torch_entry["results"]["1"]["per_sample_mse"]
    # 7-bit weights keep the tiny model's int8 error small, but they are other graphs: the same
    # engine on the float32 graphs of the folder (X) gives other errors.
    floating = export_entry["results"]["1"]["per_sample_mse"]
    assert np.all(np.isfinite(quantised)) and not np.array_equal(quantised, floating)
    np.testing.assert_allclose(quantised, exact, rtol=0.05, atol=1e-6)
    assert "| Q (onnxruntime int8) |" in stdout


def test_an_export_alone_takes_the_split_of_its_source_run(trained_runs, snap_export, tmp_path):
    alone, _ = _eval(tmp_path, ["--export", str(snap_export), "--precision", "int8"])
    beside, _ = _eval(tmp_path, ["--checkpoint", str(trained_runs["snap"])])
    assert alone["checkpoints"]["snap_onnx"]["precision"] == "int8"
    assert alone["episodes"] == beside["episodes"]
    assert alone["config"]["split_seed"] == beside["config"]["split_seed"]


def test_openvino_backend_matches_onnxruntime(snap_export, tmp_path):
    pytest.importorskip("openvino")
    ov, stdout = _eval(tmp_path, ["--export", f"O={snap_export}", "--backend", "openvino"])
    ort, _ = _eval(tmp_path, ["--export", f"O={snap_export}"])
    assert ov["checkpoints"]["O"]["backend"] == "openvino"
    assert ov["checkpoints"]["O"]["engine_device"] == "openvino (CPU, float32)"
    np.testing.assert_allclose(ov["checkpoints"]["O"]["results"]["2"]["per_sample_mse"],
                               ort["checkpoints"]["O"]["results"]["2"]["per_sample_mse"],
                               rtol=1e-3, atol=1e-7)
    assert "| O (openvino float32) |" in stdout
    # One run, two engines: @openvino,int8 sets that export's backend and precision.
    both, stdout = _eval(tmp_path, ["--export", f"R={snap_export}",
                                    "--export", f"V={snap_export}@openvino,int8"])
    assert both["checkpoints"]["R"]["backend"] == "onnxruntime"
    assert (both["checkpoints"]["V"]["backend"], both["checkpoints"]["V"]["precision"]) == (
        "openvino", "int8")
    np.testing.assert_allclose(both["checkpoints"]["R"]["results"]["2"]["per_sample_mse"],
                               ort["checkpoints"]["O"]["results"]["2"]["per_sample_mse"],
                               rtol=1e-6, atol=1e-9)
    assert "| V (openvino int8) |" in stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--precision", "int8"], "--precision applies to --export"),
    (["--export", "EXPORT", "--precision", "bfloat16"], "option of --backend openvino"),
    (["--export", "EXPORT@bfloat16"], "option of --backend openvino"),
    (["--export", "EXPORT@onnxruntime,bfloat16", "--backend", "openvino"],
     "option of --backend openvino"),
    (["--export", "S=EXPORT", "--checkpoint", "S=RUN"], "both named 'S'"),
])
def test_bad_export_flags_exit_2(argv, message, trained_runs, snap_export, tmp_path):
    argv = [a.replace("EXPORT", str(snap_export)).replace("RUN", str(trained_runs["snap"]))
            for a in argv]
    if "--checkpoint" not in argv and "--export" not in argv:
        argv += ["--checkpoint", str(trained_runs["snap"])]
    code, _, stderr = run_cli(["eval", *argv, "--json", str(tmp_path / "e.json"), *FAST])
    assert code == 2 and message in stderr, stderr
    assert not (tmp_path / "e.json").exists()
