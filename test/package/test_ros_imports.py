# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Only ``snapflow_ros.nodes`` imports ROS, at any depth (lazy imports inside functions count).

Every ``import`` / ``from ... import`` statement of every module is checked, wherever it sits
(module level, functions, methods, ``try`` blocks), and so are ``importlib.import_module`` /
``__import__`` calls with a literal name. Outside ``nodes/`` no module may import rclpy or a ROS
interface package; the ROS-free packages may not import ``snapflow_ros.nodes`` either (that
would pull rclpy in at run time). Only the entry points that start nodes may.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "snapflow_ros"
ROS_PACKAGES = {"rclpy", "rcl_interfaces", "builtin_interfaces", "rosidl_runtime_py",
                "rosidl_parser", "launch", "launch_ros", "ament_index_python", "rosbag2_py"}
ROS_SUFFIXES = ("_msgs", "_srvs", "_interfaces")
NODES = "snapflow_ros.nodes"
# Command-line entry points: they start nodes through the harnesses, so they may import them.
ENTRY_POINTS = ("snapflow_ros.cli",)


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_ros(name: str) -> bool:
    top = name.split(".")[0]
    return top in ROS_PACKAGES or top.endswith(ROS_SUFFIXES)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imported_names(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file at ``path``, at any nesting depth."""
    module = _module_name(path, package)
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: resolve against this module's package.
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            if not (_is_ros(name) or _within(name, NODES)):
                # ``from snapflow_ros import nodes`` names the package in the alias.
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names
                          if alias.name != "*"]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def violations(package: Path = PACKAGE) -> list[str]:
    """``file:line: why`` for every forbidden import in the modules under ``package``."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        module = _module_name(path, package)
        if _within(module, NODES):
            continue
        entry_point = any(_within(module, entry) for entry in ENTRY_POINTS)
        where = path.relative_to(package.parent)
        for line, name in imported_names(path, package):
            if _is_ros(name):
                problems.append(f"{where}:{line}: imports {name} (ROS) outside {NODES}")
            elif _within(name, NODES) and not entry_point:
                problems.append(f"{where}:{line}: imports {name}; only {NODES} and the entry "
                                f"points ({', '.join(ENTRY_POINTS)}) may")
    return problems


def test_no_module_outside_nodes_imports_ros_at_any_depth():
    problems = violations()
    assert not problems, "\n".join(problems)


def test_the_check_sees_lazy_relative_and_dynamic_imports(tmp_path):
    package = tmp_path / "snapflow_ros"
    (package / "evaluation").mkdir(parents=True)
    (package / "nodes").mkdir()
    (package / "__init__.py").write_text("")
    (package / "nodes" / "__init__.py").write_text("")
    (package / "nodes" / "ok_node.py").write_text("import rclpy\n")
    (package / "evaluation" / "__init__.py").write_text("")
    (package / "evaluation" / "bad.py").write_text(
        "import numpy\n"
        "def run():\n"
        "    try:\n"
        "        from rclpy.qos import QoSProfile\n"
        "    except ImportError:\n"
        "        pass\n"
        "    from std_srvs.srv import Trigger\n"
        "    from ..nodes import ok_node\n"
        "    from .. import nodes\n"
        "    import importlib\n"
        "    importlib.import_module('trajectory_msgs.msg')\n")
    found = violations(package)
    assert [p.split(": ")[0] for p in found] == [
        "snapflow_ros/evaluation/bad.py:4", "snapflow_ros/evaluation/bad.py:7",
        "snapflow_ros/evaluation/bad.py:8", "snapflow_ros/evaluation/bad.py:9",
        "snapflow_ros/evaluation/bad.py:11"]
    assert "rclpy.qos (ROS)" in found[0] and "snapflow_ros.nodes" in found[2]
