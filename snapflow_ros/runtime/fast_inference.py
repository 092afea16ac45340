# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The accelerated inference path: one observation -> one action chunk, with nothing wasted.

:class:`FastInference` runs the same computation as
:func:`snapflow_ros.snapflow.sampler.predict_action_chunk` (encode the observation once, then
``k`` expert calls ``x <- x - (t_i - t_{i+1}) F(x, s_i, t_i)``), organised for batch-1 latency:

- always: no autograd (``inference_mode``), the prefix computed once and reused, the time
  tensors of every step count preallocated on the device, no host round-trips between the
  prefix and the last expert call;
- ``accelerate="compile"``: the expert call (``policy.velocity``) goes through
  ``torch.compile`` (fused kernels; the first call compiles, in ``warmup``);
- ``accelerate="cuda_graph"`` (CUDA only): the prefix and the whole k-step sampler are captured
  as CUDA graphs over static input, context, noise and output buffers, and replayed: one launch
  instead of hundreds. One graph pair per input shape and step count, captured on first use
  (the node does it in ``configure`` through ``PolicyRunner.warmup``). When a part cannot be
  captured it runs eagerly on the same static buffers and :attr:`FastInference.status` says why;
- ``accelerate="compile_cuda_graph"``: both (the captured expert calls are the compiled ones);
- ``dtype="bfloat16"``: prefix and expert under bf16 autocast (the chunk is still integrated in
  float32). Meant for GPUs.

Exactness, against the plain sampler fed the same noise: ``none`` and ``cuda_graph`` in float32
replay the same kernels (equal up to float rounding, in practice bit for bit); ``compile`` fuses
kernels and may reorder float operations (relative differences ~1e-6); ``bfloat16`` changes the
actions by about 1% of their spread, and says so (it is off by default).

LeRobot's VLA code builds small constants on the host in every call (``torch.tensor(list,
device=cuda)``); that stalls on the host and breaks CUDA graph capture. :class:`DeviceConstants`
serves them from a device-side cache during warm-up and capture. Host round-trips inside one
backend's model are that backend's business: the policy's ``install_capture_shims`` (e.g.
SmolVLA's, in :mod:`snapflow_ros.policies.smolvla.fast_inference_smolvla`) swaps them for exact
device-only code while a :class:`FastInference` with acceleration is alive. The policy is driven
only through :class:`~snapflow_ros.policies.base.FlowMatchingPolicy`'s protocol.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree

from snapflow_ros.config_fields import ConfigError, check_config, param
from snapflow_ros.runtime.inference_options import ACCELERATIONS, INFERENCE_DTYPES
from snapflow_ros.snapflow.sampler import sample_noise
from snapflow_ros.snapflow.sampler_modes import SAMPLER_MODES

if TYPE_CHECKING:
    from snapflow_ros.policies.base import FlowMatchingPolicy

ATTENTIONS = ("model", "sdpa")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
LANGUAGE_TOKENS = "observation.language.tokens"
LANGUAGE_MASK = "observation.language.attention_mask"
"""LeRobot's keys of the tokenised prompt in a preprocessed batch."""


@dataclasses.dataclass(frozen=True)
class FastInferenceConfig:
    """Speed options of :class:`FastInference`; the defaults change nothing in the actions."""

    accelerate: str = param("none", "none, compile, cuda_graph or compile_cuda_graph (see the "
                            "module documentation).", choices=ACCELERATIONS)
    dtype: str = param("float32", "float32, or bfloat16 autocast of prefix and expert (GPUs; "
                       "changes actions by about 1% of their spread).", choices=INFERENCE_DTYPES)
    compile_mode: str = param(
        "default", "torch.compile mode of the expert call. With CUDA graph capture use default "
        "or max-autotune-no-cudagraphs (the graph is ours).", choices=COMPILE_MODES)
    attention: str = param(
        "model", "model: the attention the policy chooses; sdpa: PyTorch's fused attention in "
        "place of transformers' eager attention (PI0 / PI05 prefix and expert; float rounding "
        "only).", choices=ATTENTIONS)
    prompt_bucket: int = param(
        0, "LeRobot VLAs: drop trailing prompt padding, keeping a multiple of this many tokens "
        "(0: keep the tokenizer's padding). Padding is masked out, so the actions only change "
        "by float rounding.", low=0, high=4096)
    max_graphs: int = param(8, "CUDA graph sets kept (one per input shape), least recently used "
                            "dropped first.", low=1, high=256)
    warmup_iterations: int = param(2, "Eager runs before compiling / capturing.", low=1,
                                   high=100)

    def __post_init__(self) -> None:
        check_config(self)
        if self.accelerate.startswith("compile") and self.compile_mode == "reduce-overhead" \
                and self.accelerate.endswith("cuda_graph"):
            raise ConfigError("compile_mode=reduce-overhead makes its own CUDA graphs: use "
                              "accelerate=compile with it, or another compile_mode")

    @property
    def uses_cuda_graphs(self) -> bool:
        """Whether prefix and sampler are captured as CUDA graphs."""
        return self.accelerate.endswith("cuda_graph")

    @property
    def compiles_expert(self) -> bool:
        """Whether the expert call goes through ``torch.compile``."""
        return self.accelerate.startswith("compile")


def sampling_grid(num_steps: int, mode: str) -> list[tuple[float, float, float]]:
    """``(t, s, dt)`` of each expert call of a ``num_steps`` sampler in ``mode`` (jump / euler).

    The same uniform grid as :func:`~snapflow_ros.snapflow.sampler.sample_chunk` (Python floats,
    so the last point is exactly 0 and a single step is exactly 1 long).
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    if mode not in SAMPLER_MODES:
        raise ValueError(f"mode must be one of {', '.join(SAMPLER_MODES)}, got {mode!r}")
    grid = [1.0 - i / num_steps for i in range(num_steps)] + [0.0]
    return [(t_now, t_now if mode == "euler" else t_next, t_now - t_next)
            for t_now, t_next in zip(grid[:-1], grid[1:])]


def trim_prompt_padding(processed: dict, bucket: int) -> dict:
    """A LeRobot-preprocessed batch without the prompt's trailing padding columns.

    Keeps the longest prompt of the batch rounded up to a multiple of ``bucket`` tokens (so a few
    shapes cover every prompt). Columns dropped are padding in every row: they are masked out of
    all attention, so only float rounding changes. Batches without a prompt pass unchanged.
    """
    tokens, mask = processed.get(LANGUAGE_TOKENS), processed.get(LANGUAGE_MASK)
    if bucket <= 0 or not isinstance(tokens, torch.Tensor) or not isinstance(mask, torch.Tensor):
        return processed
    length = mask.shape[-1]
    valid = mask.reshape(-1, length).bool().any(dim=0)
    # One small device -> host read, before any work of this inference is queued.
    used = int(valid.nonzero().max().item()) + 1 if bool(valid.any()) else 1
    keep = min(length, -(-used // bucket) * bucket)
    if keep == length:
        return processed
    trimmed = dict(processed)
    trimmed[LANGUAGE_TOKENS] = tokens[..., :keep]
    trimmed[LANGUAGE_MASK] = mask[..., :keep]
    return trimmed


# ------------------------------------------------------------------------------------------------
# Host constants and attention: third-party code made capturable / fused without editing it.


def _freeze(data: Any) -> Any:
    """A hashable, type-preserving key of Python data (TypeError for anything else)."""
    if isinstance(data, (bool, int, float)):
        return (type(data).__name__, data)
    if isinstance(data, (list, tuple)):
        return (type(data).__name__, tuple(_freeze(item) for item in data))
    raise TypeError(type(data).__name__)


class DeviceConstants:
    """Serves ``torch.tensor(python_data, device=<device_type>)`` from a device-side cache.

    Inside :meth:`active`, ``torch.tensor`` calls that turn Python numbers or lists into tensors
    on ``device_type`` return a copy of a tensor created on the first call with the same data,
    dtype and device; outside a capture that first call is ordinary. During CUDA graph capture the
    copy is a device-to-device copy (capturable) instead of a host-to-device copy (which is not).
    Every other ``torch.tensor`` call passes through unchanged.
    """

    def __init__(self, device_type: str = "cuda") -> None:
        self.device_type = device_type
        self._cache: dict[tuple, torch.Tensor] = {}
        self._original: Callable[..., torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self._cache)

    def _device_key(self, device: torch.device) -> torch.device:
        if device.type == "cuda" and device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        return device

    def tensor(self, data: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Drop-in ``torch.tensor`` (see the class documentation)."""
        original = self._original or torch.tensor
        device = kwargs.get("device")
        if (args or device is None or kwargs.get("requires_grad") or kwargs.get("pin_memory")
                or set(kwargs) - {"device", "dtype"}):
            return original(data, *args, **kwargs)
        device = self._device_key(torch.device(device))
        if device.type != self.device_type:
            return original(data, *args, **kwargs)
        try:
            key = (_freeze(data), kwargs.get("dtype"), device)
        except TypeError:
            return original(data, *args, **kwargs)
        cached = self._cache.get(key)
        if cached is None:
            if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
                raise RuntimeError(
                    f"torch.tensor({data!r}, device={device}) first seen during CUDA graph "
                    "capture: it needs a host-to-device copy (run the call once before capture)")
            cached = original(data, dtype=kwargs.get("dtype"), device=device)
            self._cache[key] = cached
        return cached.clone()

    @contextlib.contextmanager
    def active(self) -> Iterator[DeviceConstants]:
        """Route ``torch.tensor`` through :meth:`tensor` inside the block (process-wide)."""
        if self._original is not None:
            yield self
            return
        self._original = torch.tensor
        torch.tensor = self.tensor
        try:
            yield self
        finally:
            torch.tensor = self._original
            self._original = None


def _sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                    value: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float,
                    dropout: float = 0.0, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """The eager attention contract of transformers ((B, H, L, d) in, (B, L, H, d) out) on SDPA."""
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        # An additive mask in the query's dtype (SDPA requires it); fully masked rows stay
        # uniform as in eager attention, where a boolean mask would give NaN.
        attention_mask = attention_mask.to(query.dtype)
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        # Shared KV heads repeated as eager attention does: the fused kernels that take an
        # arbitrary mask do not all take grouped heads.
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def sdpa_for_eager_attention() -> Iterator[None]:
    """Within the block, layers that ask transformers for "eager" attention get SDPA.

    LeRobot's PI0 / PI05 force ``_attn_implementation = "eager"`` in every call; this swaps the
    implementation behind that name (transformers' global attention registry) for the block.
    """
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    mapping = ALL_ATTENTION_FUNCTIONS._global_mapping
    missing = object()
    previous = mapping.get("eager", missing)
    mapping["eager"] = _sdpa_attention
    try:
        yield
    finally:
        if previous is missing:
            mapping.pop("eager", None)
        else:
            mapping["eager"] = previous


# ------------------------------------------------------------------------------------------------


def _tensor_signature(tree: Any) -> tuple:
    leaves, spec = _pytree.tree_flatten(tree)
    meta = tuple((tuple(leaf.shape), leaf.dtype, leaf.device.type) if isinstance(
        leaf, torch.Tensor) else None for leaf in leaves)
    return (str(spec), meta)


def _copy_tree_into(static: Any, fresh: Any) -> None:
    for target, source in zip(_pytree.tree_leaves(static), _pytree.tree_leaves(fresh)):
        if isinstance(target, torch.Tensor):
            target.copy_(source, non_blocking=True)


def _static_copy(tree: Any) -> Any:
    # Each tensor stays on its own device: a host-side input of the prefix must stay on the host.
    return _pytree.tree_map(
        lambda leaf: leaf.clone() if isinstance(leaf, torch.Tensor) else leaf, tree)


@dataclasses.dataclass
class _SamplerGraph:
    graph: Any
    output: torch.Tensor


@dataclasses.dataclass
class _GraphSet:
    """Static buffers and graphs of one input shape."""

    inputs: Any
    context: Any
    noise: torch.Tensor
    prefix_graph: Any = None
    samplers: dict = dataclasses.field(default_factory=dict)
    notes: dict = dataclasses.field(default_factory=dict)


class FastInference:
    """Batch-``B`` (meant for 1) inference of a flow-matching policy on its own device.

    ``predict(batch, num_steps=..., mode=...)`` returns the robot-unit chunk ``(B, H, A)`` on the
    policy's device; ``prepare`` / ``encode`` / ``sample`` / ``to_robot_actions`` are its stages
    (for per-stage timing). Not thread-safe: one thread drives it (the node's inference thread).
    """

    def __init__(self, policy: FlowMatchingPolicy,
                 config: FastInferenceConfig | None = None) -> None:
        self.policy = policy.eval()
        self.config = config or FastInferenceConfig()
        self.device = torch.device(policy.device)
        if self.config.uses_cuda_graphs and self.device.type != "cuda":
            raise ConfigError(f"accelerate={self.config.accelerate} needs a CUDA device; the "
                              f"policy is on {self.device}")
        self._constants = DeviceConstants(self.device.type)
        self._restore_shims: Callable[[], None] | None = None
        if self.config.accelerate != "none":
            self._restore_shims = policy.install_capture_shims()
        self._velocity: Callable[..., torch.Tensor] = policy.velocity
        if self.config.compiles_expert:
            self._velocity = torch.compile(policy.velocity, mode=self.config.compile_mode,
                                           dynamic=False)
        self._grids: dict[tuple, list[tuple[torch.Tensor, torch.Tensor, float]]] = {}
        self._graph_sets: collections.OrderedDict[tuple, _GraphSet] = collections.OrderedDict()
        self._context_owner: dict[int, _GraphSet] = {}

    # -- context of every model call -------------------------------------------------------------

    @contextlib.contextmanager
    def _model_context(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.config.dtype == "bfloat16":
                # No cast cache: cached casts of weights would not outlive a captured graph.
                stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                   cache_enabled=False))
            if self.config.attention == "sdpa":
                stack.enter_context(sdpa_for_eager_attention())
            yield

    # -- stages ----------------------------------------------------------------------------------

    def prepare(self, batch: dict) -> dict:
        """Host-side preparation: the batch the prefix reads, tensors on the policy's device.

        The policy's ``preprocess`` (a LeRobot VLA normalises and tokenises; others move to the
        device), then :func:`trim_prompt_padding`.
        """
        with torch.inference_mode():
            processed = self.policy.preprocess(batch)
            return trim_prompt_padding(processed, self.config.prompt_bucket)

    def _encode_eager(self, prepared: dict) -> Any:
        with self._model_context():
            return self.policy.encode_preprocessed(prepared)

    def encode(self, prepared: dict) -> Any:
        """The prefix: the observation's context, computed once per chunk.

        With CUDA graphs the context lives in static buffers, overwritten by the next call.
        """
        if not self.config.uses_cuda_graphs:
            return self._encode_eager(prepared)
        # Static buffers are written in place: inference mode, as every tensor made here.
        with torch.inference_mode():
            graphs = self._graph_set(prepared)
            _copy_tree_into(graphs.inputs, prepared)
            if graphs.prefix_graph is not None:
                graphs.prefix_graph.replay()
            else:
                _copy_tree_into(graphs.context, self._encode_eager(graphs.inputs))
            return graphs.context

    def _time_tensors(self, num_steps: int, mode: str,
                      rows: int) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        key = (num_steps, mode, rows)
        grid = self._grids.get(key)
        if grid is None:
            grid = []
            for t_now, s_now, dt in sampling_grid(num_steps, mode):
                t = torch.full((rows,), t_now, device=self.device, dtype=torch.float32)
                s = t if s_now == t_now else torch.full_like(t, s_now)
                grid.append((t, s, dt))
            self._grids[key] = grid
        return grid

    def _sample_eager(self, context: Any, noise: torch.Tensor, num_steps: int,
                      mode: str) -> torch.Tensor:
        with self._model_context():
            x = noise
            for t, s, dt in self._time_tensors(num_steps, mode, noise.shape[0]):
                x = x - dt * self._velocity(x, s, t, context).float()
            return x

    def sample(self, context: Any, noise: torch.Tensor, num_steps: int = 1,
               mode: str = "jump") -> torch.Tensor:
        """Integrate ``noise`` ``(B, H, D)`` to a normalised chunk in ``num_steps`` expert calls.

        With CUDA graphs and a context returned by :meth:`encode`, the whole loop is one replay;
        the result is then a static buffer, valid until the next call.
        """
        sampling_grid(num_steps, mode)  # argument checks
        graphs = self._context_owner.get(id(context)) if self.config.uses_cuda_graphs else None
        if graphs is None or graphs.noise.shape != noise.shape:
            return self._sample_eager(context, noise.to(self.device, torch.float32), num_steps,
                                      mode)
        with torch.inference_mode():
            graphs.noise.copy_(noise, non_blocking=True)
            sampler = self._sampler_graph(graphs, num_steps, mode)
            if sampler is None:
                return self._sample_eager(graphs.context, graphs.noise, num_steps, mode)
            sampler.graph.replay()
            return sampler.output

    def to_robot_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chunk ``(B, H, D)`` -> robot units ``(B, H, A)`` (the policy's own)."""
        with torch.inference_mode():
            return self.policy.to_robot_actions(x)

    def draw_noise(self, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Starting noise ``(rows, H, D)``, drawn exactly as the plain sampler draws it."""
        return sample_noise((rows, self.policy.chunk_size, self.policy.action_dim),
                            generator=generator, device=self.device)

    def predict(self, batch: dict, *, num_steps: int = 1, mode: str = "jump",
                noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Robot-unit chunk ``(B, H, A)`` for ``batch`` (the policy batch layout), on the device.

        ``noise`` ``(B, H, D)`` or ``generator`` fix the starting point as in the plain sampler.
        """
        prepared = self.prepare(batch)
        context = self.encode(prepared)
        if noise is None:
            noise = self.draw_noise(self._rows(prepared, batch), generator)
        x = self.sample(context, noise, num_steps, mode)
        return self.to_robot_actions(x).clone()

    def warmup(self, batch: dict, *, num_steps: int = 1, mode: str = "jump",
               iterations: int | None = None) -> None:
        """Run :meth:`predict` until compiled / captured for this batch shape and step count."""
        generator = torch.Generator(device=self.device).manual_seed(0)
        for _ in range(iterations or self.config.warmup_iterations):
            self.predict(batch, num_steps=num_steps, mode=mode, generator=generator)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def status(self) -> dict[str, Any]:
        """Options, and per input shape whether prefix and samplers replay as graphs or why not."""
        sets = []
        for graphs in self._graph_sets.values():
            sets.append({
                "prefix": "graph" if graphs.prefix_graph is not None else "eager",
                "samplers": {f"{k}x{mode}": ("graph" if entry is not None else "eager")
                             for (k, mode), entry in graphs.samplers.items()},
                "notes": dict(graphs.notes)})
        return {"accelerate": self.config.accelerate, "dtype": self.config.dtype,
                "attention": self.config.attention, "prompt_bucket": self.config.prompt_bucket,
                "device": str(self.device), "graph_sets": sets}

    def close(self) -> None:
        """Drop graphs and buffers and undo the policy's capture shims."""
        self._graph_sets.clear()
        self._context_owner.clear()
        self._grids.clear()
        if self._restore_shims is not None:
            self._restore_shims()
            self._restore_shims = None

    # -- CUDA graphs ---------------------------------------------------------------------------

    def _rows(self, prepared: dict, batch: dict) -> int:
        for tree in (batch.get("state"), prepared):
            for leaf in _pytree.tree_leaves(tree):
                if isinstance(leaf, torch.Tensor) and leaf.ndim > 0:
                    return int(leaf.shape[0])
        return 1

    def _capture(self, function: Callable[[], Any]) -> tuple[Any, Any]:
        """Warm ``function`` up on a side stream, then capture it; returns (graph, output)."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with self._constants.active(), torch.cuda.stream(stream):
            for _ in range(self.config.warmup_iterations):
                function()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with self._constants.active(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
            output = function()
        return graph, output

    def _after_failed_capture(self) -> None:
        with contextlib.suppress(Exception):
            torch.cuda.synchronize(self.device)

    def _graph_set(self, prepared: dict) -> _GraphSet:
        signature = _tensor_signature(prepared)
        graphs = self._graph_sets.get(signature)
        if graphs is not None:
            self._graph_sets.move_to_end(signature)
            return graphs
        while len(self._graph_sets) >= self.config.max_graphs:
            _, dropped = self._graph_sets.popitem(last=False)
            self._context_owner.pop(id(dropped.context), None)
        inputs = _static_copy(prepared)
        with self._constants.active():
            context = _static_copy(self._encode_eager(inputs))
        rows = self._rows(inputs, {})
        noise = torch.zeros(rows, self.policy.chunk_size, self.policy.action_dim,
                            device=self.device, dtype=torch.float32)
        graphs = _GraphSet(inputs=inputs, context=context, noise=noise)
        try:
            graph, captured = self._capture(lambda: self._encode_eager(graphs.inputs))
            graphs.prefix_graph, graphs.context = graph, captured
        except Exception as exc:  # noqa: BLE001 - any failure: run this part eagerly
            self._after_failed_capture()
            graphs.notes["prefix"] = f"not captured ({type(exc).__name__}: {exc})"[:500]
        self._graph_sets[signature] = graphs
        self._context_owner[id(graphs.context)] = graphs
        return graphs

    def _sampler_graph(self, graphs: _GraphSet, num_steps: int, mode: str) -> _SamplerGraph | None:
        key = (num_steps, mode)
        if key in graphs.samplers:
            return graphs.samplers[key]
        rows = graphs.noise.shape[0]
        self._time_tensors(num_steps, mode, rows)  # allocated outside the capture
        try:
            graph, output = self._capture(
                lambda: self._sample_eager(graphs.context, graphs.noise, num_steps, mode))
            entry: _SamplerGraph | None = _SamplerGraph(graph, output)
        except Exception as exc:  # noqa: BLE001 - any failure: run this part eagerly
            self._after_failed_capture()
            graphs.notes[f"sampler {num_steps}x{mode}"] = (
                f"not captured ({type(exc).__name__}: {exc})"[:500])
            entry = None
        graphs.samplers[key] = entry
        return entry
