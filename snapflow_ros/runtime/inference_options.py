# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The names of the inference fast-path options, without torch (the runner's config uses them)."""

# How the inference path is accelerated (see snapflow_ros.runtime.fast_inference): "none" is
# the plain sampler; the others run the same computation through static buffers.
ACCELERATIONS = ("none", "compile", "cuda_graph", "compile_cuda_graph")
INFERENCE_DTYPES = ("float32", "bfloat16")
