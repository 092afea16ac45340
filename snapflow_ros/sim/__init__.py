# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The simulated robot (gym-aloha) and its scripted expert."""
