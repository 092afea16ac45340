# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Launch files checked statically (launch_ros is not installable here) and bringup run live."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from snapflow_ros.config_fields import config_from_dict, flat_fields
from snapflow_ros.nodes.parameter_files import policy_parameter_file
from snapflow_ros.runtime.config import PolicyNodeConfig

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def _console_scripts() -> set[str]:
    text = (REPO / "setup.py").read_text()
    return set(re.findall(r'"(\w+) = snapflow_ros\.[\w.]+:main"', text))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_file_compiles_and_names_what_exists(path):
    source = path.read_text()
    tree = ast.parse(source)
    compile(source, str(path), "exec")
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
               for n in tree.body)
    nodes = _calls(tree, "LifecycleNode") + _calls(tree, "Node")
    assert nodes, "no node in the launch file"
    for call in nodes:
        keywords = {k.arg: k.value for k in call.keywords}
        assert ast.literal_eval(keywords["package"]) == "snapflow_ros"
        assert ast.literal_eval(keywords["executable"]) in _console_scripts()
    for match in re.findall(r'"(config|launch)", "([\w.]+)"', source):
        assert (REPO / match[0] / match[1]).is_file(), match


def test_policy_launch_parameters_exist_on_the_node():
    tree = ast.parse((REPO / "launch" / "policy.launch.py").read_text())
    declared = set(flat_fields(PolicyNodeConfig))
    (node,) = _calls(tree, "LifecycleNode")
    parameters = {k.arg: k.value for k in node.keywords}["parameters"]
    names = [ast.literal_eval(key) for element in parameters.elts
             if isinstance(element, ast.Dict) for key in element.keys]
    assert names and set(names) <= declared
    remaps = {k.arg: k.value for k in node.keywords}["remappings"]
    sources = {ast.literal_eval(pair.elts[0]) for pair in remaps.elts}
    defaults = PolicyNodeConfig()
    node_topics = {defaults.joint_state_topic, defaults.command_topic, "task",
                   *defaults.camera_topics}
    assert sources <= node_topics | {"camera/image_raw"}


def test_policy_yaml_is_current_and_loads():
    committed = (REPO / "config" / "policy.yaml").read_text()
    assert committed == policy_parameter_file(), (
        "config/policy.yaml is out of date: python -m snapflow_ros.nodes.parameter_files config")
    values = yaml.safe_load(committed)["snapflow_policy"]["ros__parameters"]
    declared = {name for name, f in flat_fields(PolicyNodeConfig).items()
                if f.metadata.get("ros", True)}
    documented = set(re.findall(r"^    (?:# )?(\w+):", committed, re.M))
    assert declared <= documented
    assert config_from_dict(PolicyNodeConfig, values) == PolicyNodeConfig()


@pytest.mark.ros
def test_bringup_configures_and_activates(ros_env, tmp_path, graph_client):
    from checkpoint_fixtures import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tmp_path / "run")
    process = subprocess.Popen(
        [sys.executable, "-m", "snapflow_ros.cli", "bringup", "--checkpoint", str(checkpoint),
         "--device", "cpu", "-p", "camera_topics:=[camera/image_raw]"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert graph_client.wait_for_node("snapflow_policy", timeout=60)
        assert graph_client.spin_until(
            lambda: graph_client.lifecycle_state("snapflow_policy") == "active", 60)
        graph_client.spin_for(2.0)  # let bringup receive the transition's reply
    finally:
        process.send_signal(2)
        output = process.communicate(timeout=30)[0]
    assert "activate: ok" in output
