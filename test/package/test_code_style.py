# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Linters as tests, as in ROS 2 packages: ruff (pycodestyle, pyflakes, pep257), copyright."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADER = ("# Copyright 2026 The snapflow_ros Authors", "# SPDX-License-Identifier: Apache-2.0")
SOURCE_DIRS = ("snapflow_ros", "test", "benchmarks", "launch", "scripts")


def _python_files() -> list[Path]:
    files = [REPO / "setup.py"]
    for folder in SOURCE_DIRS:
        files += sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if f.is_file()]


def _ruff() -> list[str]:
    candidate = Path(sys.executable).with_name("ruff")
    if candidate.exists():
        return [str(candidate)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.importorskip("ruff", reason="ruff is a test dependency (pip install .[test])")
    return [sys.executable, "-m", "ruff"]


def test_ruff_lint_passes():
    result = subprocess.run([*_ruff(), "check", "--no-cache", *SOURCE_DIRS, "setup.py"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_python_file_has_the_copyright_header():
    missing = []
    for path in _python_files():
        lines = path.read_text().splitlines()
        # A shebang may precede the header.
        if lines and lines[0].startswith("#!"):
            lines = lines[1:]
        if tuple(lines[:2]) != HEADER:
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"files without the copyright header: {missing}"


def test_shell_scripts_have_the_copyright_header():
    scripts = [p for p in (REPO / "scripts").glob("*.sh")] + [REPO / ".ci" / "run"]
    missing = [str(p.relative_to(REPO)) for p in scripts
               if p.exists() and HEADER[0] not in p.read_text()]
    assert not missing, missing


# A file a newcomer can read in one sitting; the policy node stays a thin shell over the runtime.
MAX_SOURCE_LINES = 600
MAX_POLICY_NODE_LINES = 300


def test_no_python_file_is_longer_than_the_limit():
    lengths = {f.relative_to(REPO): len(f.read_text(encoding="utf-8").splitlines())
               for f in _python_files()}
    too_long = {str(f): n for f, n in lengths.items() if n > MAX_SOURCE_LINES}
    assert not too_long, f"split these files (> {MAX_SOURCE_LINES} lines): {too_long}"
    node = lengths[Path("snapflow_ros/nodes/policy_node.py")]
    assert node < MAX_POLICY_NODE_LINES, f"policy_node.py has {node} lines: move logic to runtime/"
