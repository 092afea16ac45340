# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SmolVLM's vision code without host round-trips, so SmolVLA's prefix can be a CUDA graph.

transformers' SmolVLM builds its default patch mask on the CPU and places position ids through
a boolean mask; both wait on the host and break CUDA graph capture.
:func:`install_sync_free_smolvlm` swaps them, on one model instance, for exact device-only
versions (no edit of transformers).
``SnapFlowSmolVLA.install_capture_shims`` installs them while an accelerated
:class:`~snapflow_ros.runtime.fast_inference.FastInference` is alive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def _sync_free_patch_embeddings(embeddings: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """SmolVLM patch embeddings whose position ids need no boolean indexing (no host sync).

    Same values as transformers' ``SmolVLMVisionEmbeddings.forward``: patch ``i`` of a row of
    ``n`` valid patches sits at the fraction ``i / n``, bucketed onto the model's
    ``num_patches_per_side`` grid; padded patches get position 0. Where transformers assigns
    through a boolean mask (a device -> host sync), this selects with ``torch.where``.
    """

    def forward(pixel_values: torch.Tensor, patch_attention_mask: torch.Tensor) -> torch.Tensor:
        batch = pixel_values.shape[0]
        patches = embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        per_side = embeddings.num_patches_per_side
        device = pixel_values.device
        boundaries = torch.arange(1 / per_side, 1.0, 1 / per_side, device=device)
        rows = patch_attention_mask[:, :, 0].sum(dim=1)
        cols = patch_attention_mask[:, 0, :].sum(dim=1)
        row_index = torch.arange(patch_attention_mask.size(1), device=device, dtype=torch.float32)
        col_index = torch.arange(patch_attention_mask.size(2), device=device, dtype=torch.float32)
        row_frac = torch.clamp(row_index[None, :] * (1.0 / rows)[:, None], max=1.0 - 1e-6)
        col_frac = torch.clamp(col_index[None, :] * (1.0 / cols)[:, None], max=1.0 - 1e-6)
        row_bucket = torch.bucketize(row_frac.to(pixel_values.dtype), boundaries, right=True)
        col_bucket = torch.bucketize(col_frac.to(pixel_values.dtype), boundaries, right=True)
        ids = (row_bucket[:, :, None] * per_side + col_bucket[:, None, :]).reshape(batch, -1)
        valid = patch_attention_mask.reshape(batch, -1)
        position_ids = torch.where(valid, ids, torch.zeros_like(ids))
        return patches + embeddings.position_embedding(position_ids)

    return forward


def _device_patch_mask(vision: torch.nn.Module, original: Callable) -> Callable:
    """SmolVLM vision forward whose default (all-valid) patch mask is built on the device."""

    def forward(pixel_values: torch.Tensor, patch_attention_mask: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        if patch_attention_mask is None:
            size = vision.patch_size
            patch_attention_mask = torch.ones(
                (pixel_values.shape[0], pixel_values.shape[2] // size,
                 pixel_values.shape[3] // size), dtype=torch.bool, device=pixel_values.device)
        return original(pixel_values, patch_attention_mask=patch_attention_mask, **kwargs)

    return forward


def install_sync_free_smolvlm(model: torch.nn.Module) -> Callable[[], None]:
    """Swap SmolVLM's host-syncing vision code for exact device-only versions on ``model``.

    Applies to every ``SmolVLMVisionEmbeddings`` / ``SmolVLMVisionTransformer`` inside
    ``model`` (instance attributes; the classes are untouched). Returns a function that undoes it.
    """
    undo: list[Callable[[], None]] = []
    for module in model.modules():
        name = type(module).__name__
        if name == "SmolVLMVisionEmbeddings" and "forward" not in module.__dict__:
            module.forward = _sync_free_patch_embeddings(module)
        elif (name == "SmolVLMVisionTransformer" and "forward" not in module.__dict__
              and hasattr(module, "patch_size")):
            module.forward = _device_patch_mask(module, module.forward)
        else:
            continue
        undo.append(lambda m=module: m.__dict__.pop("forward", None))

    def restore() -> None:
        for step in undo:
            step()
        undo.clear()

    return restore
