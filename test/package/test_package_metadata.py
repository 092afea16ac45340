# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""package.xml is valid format 3 and names what setup.py installs; executables resolve."""

import ast
import importlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# setup.py requirement name -> rosdep key used in package.xml.
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "pyyaml": "python3-yaml",
    "rosbags": "python3-rosbags",
    "opencv-python-headless": "python3-opencv",
    "tqdm": "python3-tqdm",
}


def _setup_call_keywords() -> dict:
    tree = ast.parse((REPO / "setup.py").read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            keywords = {}
            for kw in node.keywords:
                if isinstance(kw.value, ast.Name):
                    keywords[kw.arg] = constants.get(kw.value.id)
                else:
                    try:
                        keywords[kw.arg] = ast.literal_eval(kw.value)
                    except ValueError:
                        keywords[kw.arg] = None
            return keywords
    raise AssertionError("setup() call not found in setup.py")


def _package_xml() -> ET.Element:
    return ET.parse(REPO / "package.xml").getroot()


def test_package_xml_is_format_3_ament_python():
    root = _package_xml()
    assert root.tag == "package" and root.get("format") == "3"
    for tag in ("name", "version", "description", "maintainer", "license"):
        element = root.find(tag)
        assert element is not None and element.text and element.text.strip(), tag
    assert root.findtext("name") == "snapflow_ros"
    assert root.find("maintainer").get("email")
    assert root.findtext("export/build_type") == "ament_python"
    assert re.fullmatch(r"\d+\.\d+\.\d+", root.findtext("version"))


def test_versions_agree():
    assert _package_xml().findtext("version") == _setup_call_keywords()["version"]


def test_package_xml_names_every_runtime_dependency_of_setup_py():
    declared = {e.text.strip() for e in _package_xml().findall("exec_depend")}
    requirements = _setup_call_keywords()["install_requires"]
    for requirement in requirements:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()
        assert name in ROSDEP_KEYS, f"{name}: add its rosdep key to ROSDEP_KEYS and package.xml"
        assert ROSDEP_KEYS[name] in declared, f"package.xml lacks exec_depend {ROSDEP_KEYS[name]}"


def test_package_xml_names_every_ros_interface_the_nodes_import():
    declared = {e.text.strip() for e in _package_xml().findall("exec_depend")}
    imported = set()
    for path in (REPO / "snapflow_ros").rglob("*.py"):
        for match in re.finditer(r"^\s*from (\w+_msgs|\w+_srvs|rclpy|rcl_interfaces)\b",
                                 path.read_text(), re.M):
            imported.add(match.group(1))
    assert imported, "no ROS imports found: the scan is broken"
    assert imported <= declared, f"missing exec_depend: {sorted(imported - declared)}"


def test_ros_messages_are_not_hard_requirements_of_setup_py():
    requirements = " ".join(_setup_call_keywords()["install_requires"])
    assert "ros-" not in requirements and "rclpy" not in requirements


def test_console_scripts_point_at_existing_main_functions():
    scripts = _setup_call_keywords()["entry_points"]["console_scripts"]
    assert scripts
    for entry in scripts:
        name, target = (part.strip() for part in entry.split("="))
        module_name, function = target.split(":")
        path = REPO / (module_name.replace(".", "/") + ".py")
        if not path.is_file():  # a package: its main is in __init__.py
            path = REPO / module_name.replace(".", "/") / "__init__.py"
        assert path.is_file(), f"{name}: {path} missing"
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body), (
            f"{name}: {module_name} has no function {function}")


def test_data_files_are_installed_for_colcon():
    source = (REPO / "setup.py").read_text()
    for installed in ("share/ament_index/resource_index/packages", 'f"share/{PACKAGE}"',
                      "launch/*.launch.py", "config/*.yaml", '"package.xml"'):
        assert installed in source, f"setup.py does not install {installed}"
    assert (REPO / "resource" / "snapflow_ros").is_file()
    assert (REPO / "setup.cfg").read_text().count("$base/lib/snapflow_ros") == 2


def test_package_imports_without_torch_or_rclpy():
    importlib.import_module("snapflow_ros")
    source = (REPO / "snapflow_ros" / "__init__.py").read_text()
    assert "import torch" not in source and "import rclpy" not in source
