# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Where SnapFlow's ``phi_s`` enters LeRobot's SmolVLA / PI0 / PI05, without editing LeRobot.

LeRobot's flow-matching cores (``VLAFlowMatching``, ``PI0Pytorch``, ``PI05Pytorch``) embed the
current time ``t`` in ``embed_suffix``. :class:`TargetTimeInjection` wraps that method on one model
instance and adds ``phi_s(s)``, the target-time embedding, where the model conditions on time:

- SmolVLA / PI0 (``site="action_time_mlp_in"``): a forward pre-hook on ``action_time_mlp_in``
  adds ``phi_s(s)`` to the time half of its input ``cat[action_emb, time_emb]``;
- PI05 (``site="adarms_cond"``): ``phi_s(s)`` is added to the adaRMS conditioning vector that
  ``embed_suffix`` returns (after the last SiLU), which modulates every expert layer.

The target time ``s`` comes from, in order: an explicit ``s`` set by :meth:`target_time` (our
``velocity``); the grid of LeRobot's own Euler loop in ``"jump"`` sampling (``s = t - 1/N``,
so ``select_action`` with N = 1 is SnapFlow's 1-NFE jump); else ``s = t`` (local velocity, also
LeRobot's training forward). In the last case the pre-hook reads ``t``'s encoding from its own
input, so a recomputation under LeRobot's gradient checkpointing sees the same value.

Threading: the explicit ``s`` is per-instance state, so one model serves one thread at a time
(the policies check their owner thread).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from snapflow_ros.snapflow.time_embedding import TargetTimeEmbedding

TARGET_TIME_MODULE = "target_time_embedding"
"""Attribute (state-dict prefix under ``model.``) of ``phi_s`` in a LeRobot flow-matching core."""

SITES = ("action_time_mlp_in", "adarms_cond")
LEROBOT_SAMPLING = ("jump", "local")


def sinusoid(t: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """LeRobot's own sin/cos time encoding ``(B,)`` -> ``(B, dim)`` (float64 where available)."""
    from lerobot.policies.common.vla_utils import create_sinusoidal_pos_embedding

    return create_sinusoidal_pos_embedding(t, dim, min_period, max_period, device=t.device)


class TargetTimeInjection:
    """Adds ``phi_s(s)`` to the time conditioning of one LeRobot flow-matching core.

    ``model`` is the core (``policy.model``) and must already hold ``phi_s`` as
    ``model.target_time_embedding``; ``site`` is one of :data:`SITES`; ``sampling`` (one of
    :data:`LEROBOT_SAMPLING`) sets how LeRobot's own Euler loop uses ``phi_s``.
    """

    def __init__(self, model: nn.Module, *, site: str, time_dim: int, min_period: float,
                 max_period: float, sampling: str = "jump",
                 euler_steps_from: Any = None) -> None:
        if site not in SITES:
            raise ValueError(f"site must be one of {SITES}, got {site!r}")
        if sampling not in LEROBOT_SAMPLING:
            raise ValueError(f"sampling must be one of {LEROBOT_SAMPLING}, got {sampling!r}")
        self.model = model
        self.site = site
        self.time_dim = time_dim
        self.min_period = min_period
        self.max_period = max_period
        self.sampling = sampling
        self._euler_steps_from = euler_steps_from
        self._explicit_s: torch.Tensor | None = None
        self._euler_steps: int | None = None
        self._active_s: torch.Tensor | None = None
        self._embed_suffix = model.embed_suffix
        self._sample_actions = model.sample_actions
        self._hook = None
        self.attach()

    @property
    def embedding(self) -> nn.Module:
        """The ``phi_s`` module."""
        return getattr(self.model, TARGET_TIME_MODULE)

    @property
    def attached(self) -> bool:
        """Whether ``phi_s`` currently takes part in the model's forward."""
        return "embed_suffix" in self.model.__dict__

    def attach(self) -> None:
        """Install the ``embed_suffix`` / ``sample_actions`` wrappers and the hook (idempotent)."""
        if self.attached:
            return
        # Instance attributes shadow the class methods for this model only; LeRobot's code calls
        # them through ``self.`` and so reaches the wrappers.
        self.model.embed_suffix = self._wrapped_embed_suffix
        self.model.sample_actions = self._wrapped_sample_actions
        if self.site == "action_time_mlp_in":
            self._hook = self.model.action_time_mlp_in.register_forward_pre_hook(
                self._add_to_time_half)

    def detach(self) -> None:
        """Remove the wrappers and the hook (the model behaves as stock LeRobot again)."""
        for name in ("embed_suffix", "sample_actions"):
            self.model.__dict__.pop(name, None)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    @contextlib.contextmanager
    def target_time(self, s: torch.Tensor) -> Iterator[None]:
        """Within the block every ``embed_suffix`` call uses target times ``s`` ``(B,)``."""
        previous = self._explicit_s
        self._explicit_s = s
        try:
            yield
        finally:
            self._explicit_s = previous

    def _resolve_s(self, t: torch.Tensor) -> torch.Tensor | None:
        """Target time for current times ``t``; None means ``s = t``."""
        if self._explicit_s is not None:
            return self._explicit_s.to(device=t.device, dtype=torch.float32).expand(t.shape[0])
        if self._euler_steps is not None and self.sampling == "jump":
            return (t.float() - 1.0 / self._euler_steps).clamp_min(0.0)
        return None

    def _phi(self, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        encoded = sinusoid(s, self.time_dim, self.min_period, self.max_period).to(dtype)
        return self.embedding.forward_encoded(encoded)

    def _wrapped_embed_suffix(self, *args: Any, **kwargs: Any) -> Any:
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[-1]
        s = self._resolve_s(timestep)
        model = self.model
        # With an explicit s, LeRobot's own checkpointing inside embed_suffix would recompute the
        # hook after this call returned, when s is gone: run that part without it.
        saved_flag = getattr(model, "gradient_checkpointing_enabled", None)
        if s is not None and saved_flag:
            model.gradient_checkpointing_enabled = False
        self._active_s = s
        try:
            out = self._embed_suffix(*args, **kwargs)
        finally:
            self._active_s = None
            if saved_flag is not None:
                model.gradient_checkpointing_enabled = saved_flag
        if self.site != "adarms_cond":
            return out
        embs, pad_masks, att_masks, adarms_cond = out
        phi = self._phi(timestep if s is None else s, timestep.dtype)
        return embs, pad_masks, att_masks, adarms_cond + phi.to(adarms_cond.dtype)

    def _wrapped_sample_actions(self, *args: Any, **kwargs: Any) -> Any:
        steps = kwargs.get("num_steps")
        if steps is None and self._euler_steps_from is not None:
            steps = self._euler_steps_from()
        previous = self._euler_steps
        self._euler_steps = int(steps) if steps else None
        try:
            return self._sample_actions(*args, **kwargs)
        finally:
            self._euler_steps = previous

    def _add_to_time_half(self, module: nn.Module, inputs: tuple) -> tuple:
        (x,) = inputs
        width = self.time_dim
        time_half = x[..., width:]
        if self._active_s is None:
            # s = t: the encoding of t is the time half itself (any token), in its own dtype.
            encoded = time_half[:, 0, :]
            phi = self.embedding.forward_encoded(encoded)
        else:
            phi = self._phi(self._active_s, time_half.dtype)
        shifted = time_half + phi.to(time_half.dtype)[:, None, :]
        return (torch.cat([x[..., :width], shifted], dim=-1),)


def attach_target_time(policy: Any, *, site: str, time_dim: int, out_dim: int,
                       steps: Any) -> None:
    """Give a LeRobot VLA policy ``phi_s`` (zero-initialised) and its :class:`TargetTimeInjection`.

    ``phi_s`` becomes ``policy.model.target_time_embedding`` (``time_dim`` -> ``out_dim``) on
    the model's device; ``steps()`` returns the step count of LeRobot's own Euler loop.
    """
    config = policy.config
    anchor = policy.model.action_in_proj.weight
    embedding = TargetTimeEmbedding(time_dim, out_dim, config.target_time_hidden_dim or None)
    setattr(policy.model, TARGET_TIME_MODULE, embedding.to(device=anchor.device))
    policy.target_time = TargetTimeInjection(
        policy.model, site=site, time_dim=time_dim, min_period=config.min_period,
        max_period=config.max_period, sampling=config.lerobot_sampling, euler_steps_from=steps)


class _CheckpointedCall:
    """Mixin: the module's call recomputes in backward instead of keeping its activations."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = nn.Module.__call__
        if torch.is_grad_enabled() and (
            any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
            or any(p.requires_grad for p in self.parameters())  # type: ignore[attr-defined]
        ):
            return checkpoint(call, self, *args, use_reentrant=False, **kwargs)
        return call(self, *args, **kwargs)


_CHECKPOINTED_CLASSES: dict[type, type] = {}


def checkpoint_module_calls(modules: list[nn.Module]) -> int:
    """Make each module's forward recompute in backward (activation checkpointing).

    Done by swapping the instance's class for a subclass with a checkpointing ``__call__``: no
    parameter, buffer or state-dict key changes. Returns the number of modules switched.
    """
    count = 0
    for module in modules:
        cls = type(module)
        if issubclass(cls, _CheckpointedCall):
            continue
        if cls not in _CHECKPOINTED_CLASSES:
            _CHECKPOINTED_CLASSES[cls] = type(f"Checkpointed{cls.__name__}",
                                              (_CheckpointedCall, cls), {})
        module.__class__ = _CHECKPOINTED_CLASSES[cls]
        count += 1
    return count


def prefix_cache(keys: tuple[torch.Tensor, ...], values: tuple[torch.Tensor, ...]) -> Any:
    """A fresh transformers ``DynamicCache`` over per-layer prefix K/V ``(B, kv_heads, L, d)``.

    Every expert call gets its own cache object, so SmolVLA's in-place append-and-crop and PI0's
    appends never touch the tensors held in a context, and calls may share one context.
    """
    from transformers import DynamicCache

    return DynamicCache(tuple(zip(keys, values)))


def cache_tensors(cache: Any) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Per-layer (keys, values) of a filled ``DynamicCache``."""
    keys = tuple(layer.keys for layer in cache.layers)
    values = tuple(layer.values for layer in cache.layers)
    return keys, values
