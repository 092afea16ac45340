# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Makes the shared test-only module ``test/toy_policies.py`` importable from these tests."""

import sys
from pathlib import Path

# test/ has no __init__.py (a package named "test" would shadow the standard library's).
_TEST_ROOT = str(Path(__file__).resolve().parents[1])
if _TEST_ROOT not in sys.path:
    sys.path.insert(0, _TEST_ROOT)
