# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``python -m snapflow_ros.cli COMMAND ...``: the same as the ``snapflow`` command."""

import sys

from snapflow_ros.cli import main

sys.exit(main())
