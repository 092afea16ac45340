# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
