#!/usr/bin/env bash
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# The exported model runs in the policy node on a machine with only the runtime installed: a
# fresh virtual environment gets numpy, onnxruntime, opencv, pyyaml, the ROS 2 wheels of the
# "ros" extra and this package (--no-deps), and none of torch, LeRobot or transformers. The
# policy-side environment exports a tiny random checkpoint (`snapflow export onnx`); the runtime
# environment then starts the policy node on it (backend onnxruntime), configures and activates
# it over its lifecycle services, feeds it a camera image and joint states and checks that a
# JointTrajectory comes out.
#
# Usage: scripts/check_runtime_only_env.sh [WORK_DIR]   (default: a new temporary folder, removed
#   at the end unless KEEP=1). POLICY_PYTHON: the interpreter that exports (default
#   <repo>/.venv/bin/python); RUNTIME_PYTHON: the one the venv is made from (default python3.12,
#   else the interpreter the policy environment was made from).
# Exit codes: 0 passed, 1 the check failed, 3 pip could not install the runtime packages (no
#   package index reachable).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POLICY_PYTHON="${POLICY_PYTHON:-$REPO/.venv/bin/python}"
if [ -z "${RUNTIME_PYTHON:-}" ]; then
  if python3.12 -c "" >/dev/null 2>&1; then
    RUNTIME_PYTHON=python3.12
  else
    RUNTIME_PYTHON="$("$POLICY_PYTHON" -c "import sys; print(sys._base_executable)")"
  fi
fi
if [ -n "${1:-}" ]; then
  WORK="$1"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d -t snapflow_runtime_only_XXXXXX)"
  [ "${KEEP:-0}" = "1" ] || trap 'rm -rf "$WORK"' EXIT
fi
STARTED=$(date +%s)
step() { echo "[$(( $(date +%s) - STARTED )) s] $*"; }

step "runtime-only virtual environment in $WORK/venv ($RUNTIME_PYTHON)"
"$RUNTIME_PYTHON" -m venv "$WORK/venv"
VENV_PYTHON="$WORK/venv/bin/python"
# The ROS 2 wheels the node imports: the "ros" extra of setup.py, read from its source.
mapfile -t ROS_PACKAGES < <("$RUNTIME_PYTHON" - "$REPO/setup.py" <<'PY'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXTRAS_REQUIRE":
        extras = ast.literal_eval(node.value)
        print("\n".join(extras["ros"]))
PY
)
# tokenizers: a PI05 export's runner tokenises its state prompt (the onnx extra has it).
RUNTIME_PACKAGES=(numpy onnxruntime tokenizers opencv-python-headless pyyaml "${ROS_PACKAGES[@]}")
step "pip install ${RUNTIME_PACKAGES[*]} (log: $WORK/pip.log)"
if ! "$VENV_PYTHON" -m pip install -q "${RUNTIME_PACKAGES[@]}" >"$WORK/pip.log" 2>&1; then
  tail -20 "$WORK/pip.log"
  echo "pip could not install the runtime packages (is a package index reachable?)"
  exit 3
fi
# A wheel built from a copy of the sources (the repo's tree gets no build/ folder), not an
# editable install: the node must run from site-packages.
step "pip install --no-deps snapflow_ros"
mkdir -p "$WORK/src"
(cd "$REPO" && tar -cf - --exclude=__pycache__ setup.py setup.cfg package.xml README.md resource \
  launch config snapflow_ros) | tar -xf - -C "$WORK/src"
if ! "$VENV_PYTHON" -m pip install -q --no-deps "$WORK/src" >>"$WORK/pip.log" 2>&1; then
  tail -20 "$WORK/pip.log"
  echo "pip could not build this package (its build backend comes from the package index)"
  exit 3
fi

step "tiny checkpoint and its ONNX export ($POLICY_PYTHON)"
(cd "$REPO" && PYTHONPATH="$REPO/test${PYTHONPATH:+:$PYTHONPATH}" "$POLICY_PYTHON" - "$WORK" <<'PY'
import sys
from pathlib import Path

from checkpoint_fixtures import write_tiny_checkpoint

write_tiny_checkpoint(Path(sys.argv[1]) / "run", image_size=32)
PY
)
"$POLICY_PYTHON" -m snapflow_ros.cli export onnx --checkpoint "$WORK/run" --out "$WORK/onnx" \
  --overwrite

step "policy node on the export in the runtime-only environment"
# From the work folder, so that the repo's own snapflow_ros is not on the path.
cd "$WORK"
env -u PYTHONPATH "$VENV_PYTHON" - "$WORK/onnx" <<'PY'
"""Start the policy node (backend onnxruntime) and drive it as a robot would."""
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

import snapflow_ros

for name in ("torch", "lerobot", "transformers", "safetensors"):
    if importlib.util.find_spec(name) is not None:
        sys.exit(f"FAIL: {name} is importable in the runtime-only environment")
if not Path(snapflow_ros.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()):
    sys.exit(f"FAIL: snapflow_ros comes from {snapflow_ros.__file__}, not the environment")
print(f"snapflow_ros from {Path(snapflow_ros.__file__).parent}; torch, lerobot, transformers "
      "and safetensors are not installed")

from snapflow_ros.nodes.node_process import NodeProcess, isolated_ros_environment, ros_args

os.environ.update(isolated_ros_environment(log_dir=str(Path.cwd() / "ros_log")))
from sensor_msgs.msg import Image, JointState  # noqa: E402 - after the ROS environment
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from snapflow_ros.nodes.graph_client import GraphClient  # noqa: E402

NODE, SIZE = "snapflow_policy", 32
params = {"checkpoint": sys.argv[1], "backend": "onnxruntime", "device": "cpu",
          "torch_threads": 1, "camera_topics": ["camera/image_raw"], "control_rate_hz": 10.0,
          "n_act": 5, "blending": "none", "max_delta_per_tick": [0.5],
          "first_command_max_distance": 1.0}
node = NodeProcess("snapflow_ros.nodes.policy_node", args=ros_args(params=params),
                   env=os.environ, log_path=Path.cwd() / "policy_node.log").start()
try:
    with GraphClient("runtime_only_check") as client:
        if not client.wait_for_node(NODE, timeout=60):
            sys.exit(f"FAIL: the node did not come up\n{node.log_text()}")
        image_pub = client.node.create_publisher(Image, "camera/image_raw", 10)
        joint_pub = client.node.create_publisher(JointState, "joint_states", 10)
        trajectories = []
        client.node.create_subscription(JointTrajectory, "joint_trajectory", trajectories.append,
                                        10)
        JOINTS = json.loads((Path(sys.argv[1]) / "manifest.json").read_text())[
            "robot"]["joint_names"]

        def publish() -> None:
            stamp = client.node.get_clock().now().to_msg()
            image = Image(height=SIZE, width=SIZE, encoding="rgb8", step=SIZE * 3)
            image.header.stamp = stamp
            image.data = np.full((SIZE, SIZE, 3), 90, np.uint8).tobytes()
            image_pub.publish(image)
            joints = JointState(name=list(JOINTS), position=[0.0] * len(JOINTS))
            joints.header.stamp = stamp
            joint_pub.publish(joints)

        client.node.create_timer(1 / 30, publish)
        for transition in ("configure", "activate"):
            if not client.change_lifecycle_state(NODE, transition, timeout=60):
                sys.exit(f"FAIL: {transition} was refused\n{node.log_text()}")
        if not client.spin_until(lambda: len(trajectories) >= 3, 30):
            sys.exit(f"FAIL: no JointTrajectory within 30 s\n{node.log_text()}")
        trajectory = trajectories[-1]
        positions = [list(point.positions) for point in trajectory.points]
        if list(trajectory.joint_names) != list(JOINTS) or not positions or not all(
                np.isfinite(row).all() for row in positions):
            sys.exit(f"FAIL: unexpected trajectory {trajectory}")
        print(f"{len(trajectories)} trajectories, the last one {len(positions)} points for "
              f"{list(trajectory.joint_names)}")
        for transition in ("deactivate", "cleanup"):
            if not client.change_lifecycle_state(NODE, transition, timeout=30):
                sys.exit(f"FAIL: {transition} was refused\n{node.log_text()}")
    log = node.log_text()
    if "onnxruntime" not in log:
        sys.exit(f"FAIL: the node's log does not name onnxruntime\n{log}")
finally:
    node.stop(timeout=10)
print("PASSED: the export runs in the policy node with only the runtime installed")
PY
step "done"
