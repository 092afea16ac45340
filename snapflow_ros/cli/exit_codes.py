# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The exit codes of every ``snapflow`` command, benchmark and node process.

Scripts and supervisors (systemd, CI, the demo's stages) tell these outcomes apart, so every
process of the package uses this one set.
"""

EXIT_OK = 0
"""The command did what was asked."""
EXIT_FAILED = 1
"""Something failed at run time (a node died, a stage failed, an unexpected error)."""
EXIT_BAD_INPUT = 2
"""Bad input: a config, flag, file, topic or checkpoint was refused; nothing was written."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP, after the clean shutdown path ran."""
