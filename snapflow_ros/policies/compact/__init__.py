# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Our compact flow-matching policy: small CNN encoders and a transformer action expert."""
