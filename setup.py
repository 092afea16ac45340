# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ament_python package definition for snapflow_ros."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "snapflow_ros"

# Runtime dependencies shared by both environments. rclpy and the message packages come from the
# ROS 2 distro (or the optional "ros" extra on machines without one): never a hard requirement.
INSTALL_REQUIRES = [
    "numpy",
    "pyyaml",
    "rosbags>=0.10",
    "opencv-python-headless",
    "tqdm",
]
EXTRAS_REQUIRE = {
    # The policy side: training, evaluation, the policy node (Python >= 3.12).
    "policy": [
        "lerobot[smolvla,pi,dataset,training]==0.6.1",
        "safetensors",
        "matplotlib",
    ],
    # The simulated robot (Python 3.11: MuJoCo 2.3.7 and numpy<2).
    "sim": ["gym-aloha==0.1.1", "mujoco==2.3.7", "dm-control==1.0.14", "numpy<2"],
    # ROS 2 Kilted wheels from PyPI, for machines without a ROS 2 install.
    "ros": [
        "ros-rclpy",
        "ros-rmw-fastrtps-cpp",
        "ros-sensor-msgs",
        "ros-geometry-msgs",
        "ros-trajectory-msgs",
        "ros-lifecycle-msgs",
        "ros-diagnostic-msgs",
        "ros-std-srvs",
        "ros-std-msgs",
        "ros-rosgraph-msgs",
        "ros-builtin-interfaces",
    ],
    # ONNX export (`snapflow export onnx`) and the torch-free ONNX Runtime runner.
    "onnx": ["onnx>=1.18", "onnxruntime>=1.22", "onnxscript>=0.5", "tokenizers>=0.21"],
    # The OpenVINO runner of the same export folders (`backend: openvino`); CPU / Intel GPU.
    "openvino": ["openvino>=2025.1"],
    "test": ["pytest", "hypothesis", "ruff"],
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="snapflow_ros maintainers",
    maintainer_email="maintainers@snapflow-ros.dev",
    description="One-step flow-matching robot policies (SnapFlow self-distillation) on ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "snapflow = snapflow_ros.cli:main",
            "policy_node = snapflow_ros.nodes.policy_node:main",
            "heartbeat_node = snapflow_ros.nodes.heartbeat_node:main",
            "sim_robot = snapflow_ros.nodes.sim_robot_node:main",
            "train_node = snapflow_ros.nodes.train_node:main",
            "bag_player = snapflow_ros.nodes.bag_player_node:main",
        ],
    },
)
