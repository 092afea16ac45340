# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The trainer node as a real process: progress, diagnostics, latched checkpoints, ~/stop."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from bag_fixtures import write_demo_bag
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from snapflow_ros.nodes.ros_parameters import ros_fields
from snapflow_ros.nodes.train_node import PARAMETER_CONFIGS, render_params_yaml
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.checkpoint import load_policy, read_checkpoint_info
from snapflow_ros.training.train_job import (
    TrainJobConfig,
    load_train_job_yaml,
    run_train_job,
    train_job_from_mapping,
)

pytestmark = pytest.mark.ros

MODULE = "snapflow_ros.nodes.train_node"
NODE = "snapflow_trainer"
PARAMS_FILE = Path(__file__).resolve().parents[2] / "config" / "train.yaml"
JOINTS = ("shoulder", "elbow", "gripper")
CAMERA = "/camera/top/image_raw"
TINY = {"camera_topics": [CAMERA], "action_topic": "/leader/joint_states",
        "action_type": "joint_state", "image_height": 16, "image_width": 16,
        "policy_overrides": ["chunk_size=4", "cnn_channels=[4, 8]", "hidden_dim=16",
                             "num_layers=1", "num_heads=2", "num_keypoints=2",
                             "time_encoding_dim=8", "target_time_hidden_dim=8"],
        "batch_size": 4, "warmup_steps": 0, "val_every": 0, "val_num_steps": [1],
        "eval_num_samples": 8, "device": "cpu", "progress_period_s": 0.0,
        "diagnostics_period_s": 0.2}
LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    write_demo_bag(root / "ep0", storage="sqlite3", n_steps=20, joint_names=JOINTS,
                   camera_topics=(CAMERA,))
    write_demo_bag(root / "ep1", storage="mcap", n_steps=20, joint_names=JOINTS,
                   camera_topics=(CAMERA,))
    return root


@pytest.fixture(scope="module")
def teacher(bags, tmp_path_factory):
    """A teacher trained in-process with the same tiny settings, for a snapflow run."""
    out = tmp_path_factory.mktemp("runs") / "teacher"
    job = train_job_from_mapping({"bags": [str(bags)], "out_dir": str(out), **TINY,
                                  "steps": 1, "stage": "teacher"})
    run_train_job(job, progress=False, log=lambda _: None)
    return out


def params_file(tmp_path: Path, **values) -> Path:
    """config/train.yaml with ``values`` set: the shipped file must work as the node's base."""
    data = yaml.safe_load(PARAMS_FILE.read_text())
    data[NODE]["ros__parameters"].update(values)
    path = tmp_path / "train_params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Watcher:
    """Collects ~/progress, /diagnostics and ~/checkpoint messages in the test process."""

    def __init__(self, graph_client) -> None:
        self.progress: list[dict] = []
        self.statuses: list[DiagnosticStatus] = []
        self.checkpoints: list[str] = []
        node = graph_client.node
        # Transient local: a 4-step run can end before this subscription matches.
        node.create_subscription(String, f"/{NODE}/progress",
                                 lambda m: self.progress.append(json.loads(m.data)), LATCHED)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 100)
        node.create_subscription(String, f"/{NODE}/checkpoint",
                                 lambda m: self.checkpoints.append(m.data), LATCHED)

    def _diagnostics(self, array: DiagnosticArray) -> None:
        self.statuses += [s for s in array.status if s.name.startswith(NODE)]

    def last(self) -> DiagnosticStatus | None:
        return self.statuses[-1] if self.statuses else None

    def level_seen(self, level: bytes, text: str) -> bool:
        return any(s.level == level and text in s.message for s in self.statuses)


def test_parameter_file_documents_every_declared_parameter_and_loads():
    text = PARAMS_FILE.read_text()
    assert text == render_params_yaml(), "regenerate config/train.yaml with render_params_yaml"
    declared = [f.name for cls in PARAMETER_CONFIGS for f in ros_fields(cls)]
    assert len(declared) == len(set(declared)), "parameter names must be unique"
    listed = set(yaml.safe_load(text)[NODE]["ros__parameters"])
    # Empty lists and unset values cannot be in a ROS parameter file: listed as comments.
    listed |= set(re.findall(r"^    # (\w+): (?:\[\]|null)$", text, flags=re.MULTILINE))
    assert listed == set(declared)
    for name in declared:  # each documented on the line above it
        assert re.search(rf"^    # .+\n    (# )?{name}: ", text, flags=re.MULTILINE), name
    assert load_train_job_yaml(PARAMS_FILE) == TrainJobConfig()


def test_node_trains_reports_progress_and_latches_each_checkpoint(start_node, graph_client,
                                                                  bags, tmp_path):
    out = tmp_path / "run"
    watcher = Watcher(graph_client)
    proc = start_node(MODULE, params_file=str(params_file(
        tmp_path, bags=[str(bags)], out_dir=str(out), steps=4, checkpoint_every=2,
        exit_when_done=False, **TINY)))
    assert graph_client.spin_until(lambda: watcher.level_seen(DiagnosticStatus.OK, "done"),
                                   timeout=90), proc.log_text()
    assert [p["step"] for p in watcher.progress] == [1, 2, 3, 4]
    last = watcher.progress[-1]
    assert last["total"] == 4 and last["stage"] == "teacher" and last["eta_s"] == 0
    assert last["loss"] > 0 and last["samples_per_s"] > 0
    values = {kv.key: kv.value for kv in watcher.last().values}
    assert values["step"] == "4" and values["total"] == "4"
    assert graph_client.spin_until(lambda: len(watcher.checkpoints) == 2, timeout=5)
    assert [Path(p).name for p in watcher.checkpoints] == ["step_00000002", "step_00000004"]

    # A subscriber that comes late still gets the newest checkpoint (transient local).
    late: list[str] = []
    graph_client.node.create_subscription(String, f"/{NODE}/checkpoint",
                                          lambda m: late.append(m.data), LATCHED)
    assert graph_client.spin_until(lambda: late, timeout=10)
    assert late == [watcher.checkpoints[-1]]
    policy = load_policy(late[0], expected_robot=RobotInterface(
        joint_names=JOINTS, camera_keys=("top",), image_height=16, image_width=16))
    assert policy.chunk_size == 4
    assert read_checkpoint_info(late[0])["info"]["stage"] == "teacher"
    assert proc.running, "exit_when_done=false keeps the node up, idle"
    assert proc.stop(timeout=20) == 0
    assert "Traceback" not in proc.log_text()


def test_stop_service_ends_a_snapflow_run_after_a_checkpoint_and_exits(
        start_node, graph_client, bags, teacher, tmp_path):
    out = tmp_path / "run"
    watcher = Watcher(graph_client)
    tiny = {k: v for k, v in TINY.items() if k != "policy_overrides"}
    proc = start_node(MODULE, params_file=str(params_file(
        tmp_path, bags=[str(bags)], out_dir=str(out), steps=100000, checkpoint_every=0,
        stage="snapflow", init_checkpoint=str(teacher), **tiny)))
    assert graph_client.spin_until(lambda: len(watcher.progress) >= 2, timeout=90), \
        proc.log_text()
    client = graph_client.node.create_client(Trigger, f"/{NODE}/stop")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert graph_client.spin_until(future.done, timeout=10)
    assert future.result().success, future.result().message
    assert graph_client.spin_until(lambda: not proc.running, timeout=60), proc.log_text()
    assert proc.process.returncode == 0, proc.log_text()
    graph_client.spin_until(lambda: watcher.checkpoints, timeout=5)
    assert watcher.level_seen(DiagnosticStatus.WARN, "stopped on request"), watcher.statuses
    assert all(p["stage"] == "snapflow" for p in watcher.progress)
    info = read_checkpoint_info(out)
    step = info["info"]["step"]
    assert info["info"]["stage"] == "snapflow" and 2 <= step < 100000
    assert info["normalization"] == read_checkpoint_info(teacher)["normalization"]
    assert watcher.checkpoints and Path(watcher.checkpoints[-1]).name == f"step_{step:08d}"


def test_bad_bag_is_an_error_status_and_exit_code_not_a_crash(start_node, graph_client,
                                                              tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording")
    watcher = Watcher(graph_client)
    proc = start_node(MODULE, params_file=str(params_file(
        tmp_path, bags=[str(notes)], out_dir=str(tmp_path / "run"), exit_when_done=False,
        **TINY)))
    assert graph_client.spin_until(
        lambda: watcher.level_seen(DiagnosticStatus.ERROR, str(notes)), timeout=60), \
        proc.log_text()
    assert "rosbag2" in watcher.last().message
    assert proc.running, "an error must not crash the node"
    assert proc.stop(timeout=20) == 2
    log = proc.log_text()
    assert "Traceback" not in log and str(notes) in log
    assert not (tmp_path / "run").exists()
