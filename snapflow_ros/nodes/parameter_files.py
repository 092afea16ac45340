# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Write the documented parameter files in ``config/`` from the config dataclasses.

``python -m snapflow_ros.nodes.parameter_files config/`` regenerates them; a test checks that
the committed files list every parameter the nodes declare.
"""

from __future__ import annotations

import sys
from pathlib import Path

from snapflow_ros.config_fields import render_ros_params_yaml

POLICY_HEADER = """\
Parameters of the policy node (snapflow_policy): ros2 run snapflow_ros policy_node --ros-args
--params-file config/policy.yaml -p checkpoint:=<run or checkpoint dir>
Each parameter is documented as the node declares it. 'settable at runtime' parameters change
with `ros2 param set` (or `snapflow param set`) while active and apply from the next chunk; the
others are read-only once configured (clean up the node to change them).
Empty lists are left commented out (ROS parameter files cannot hold an empty list). The
'# ---' lines name the component each group of parameters configures."""


def policy_parameter_file() -> str:
    """Text of ``config/policy.yaml`` (defaults of :class:`PolicyNodeConfig`, flat names)."""
    from snapflow_ros.nodes.policy_node import NODE_NAME
    from snapflow_ros.runtime.config import PolicyNodeConfig

    return render_ros_params_yaml(NODE_NAME, PolicyNodeConfig(), header=POLICY_HEADER)


def main(argv: list[str] | None = None) -> int:
    """Write ``policy.yaml`` into the folder given (default ``config``)."""
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "config")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.yaml").write_text(policy_parameter_file())
    print(f"wrote {folder / 'policy.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
