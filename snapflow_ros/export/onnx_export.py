# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Export a checkpoint as ONNX graphs (``snapflow export onnx``), checked against PyTorch.

The graphs are traced through the policy's own public calls (``encode``, ``velocity``,
``to_robot_actions``), so whatever the policy reads (cameras, state, environment state) and its
normalisation end up in the graphs; nothing of the model is written twice. A VLA's (SmolVLA,
PI0) preprocessor runs inside the trace too: its prompt, one task per export, becomes constant
tokens, and its KV cache the context tensors of the k-step pieces. PI05 writes the state into its
prompt, so its graphs take the prompt's tokens and mask instead of the state, and the runner
builds them (:mod:`~snapflow_ros.export.prompt_tokens`, the export's ``tokenizer.json``):

- ``one_step``: observation + noise -> ``noise - F(noise, s=0, t=1)`` in robot units (SnapFlow's
  1-NFE chunk, one call);
- ``prefix`` / ``expert`` / ``actions``: the pieces a runner chains for ``num_steps > 1``.

At export time every graph runs in ONNX Runtime against the PyTorch sampler
(:func:`~snapflow_ros.snapflow.sampler.predict_action_chunk`) on the same random inputs and
noise; a float32 error above the tolerance fails the export. With ``quantize="dynamic"`` the
graphs also get int8 weights (ONNX Runtime dynamic quantisation of MatMul / Gemm); their error is
measured and recorded, never a failure.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree

from snapflow_ros.config_fields import ConfigError, check_config, config_to_dict, param
from snapflow_ros.export.manifest import (
    BATCH_DIM,
    FORMAT,
    FORMAT_VERSION,
    GRAPH_ROLES,
    file_sha256,
    image_input_name,
    tensor_spec,
    write_manifest,
)
from snapflow_ros.export.state_prompt_graph import (
    state_prompt_context,
    state_prompt_feeds,
    state_prompt_spec,
    write_tokenizer,
)
from snapflow_ros.policies.base import FlowMatchingPolicy

SUPPORTED_POLICY_TYPES = ("compact", "smolvla", "pi0", "pi05")
"""Policies whose inference path traces into graphs."""
PROMPT_POLICY_TYPES = ("smolvla", "pi0", "pi05")
"""Policies with a language prompt."""
STATE_PROMPT_POLICY_TYPES = ("pi05",)
"""Policies that write the state into their prompt (:mod:`~snapflow_ros.export.prompt_tokens`):
their graphs take the prompt's tokens as inputs instead of the state; the others' prompt is traced
as constant tokens (one task per export)."""
QUANTIZE_METHODS = ("none", "dynamic")
INT8_OP_TYPES = ("MatMul", "Gemm")  # the ops whose weights dynamic quantisation makes int8
INT8_REDUCE_RANGE = True  # 7-bit weights (see _quantize)
GRAPH_FILES = {role: f"{role}.onnx" for role in GRAPH_ROLES}


@dataclasses.dataclass(frozen=True)
class OnnxExportConfig:
    """How ``snapflow export onnx`` writes and checks the graphs."""

    batch_size: int = param(1, "Batch of the graphs: N fixed rows, or 0 for a dynamic batch.",
                            low=0, high=4096)
    opset: int = param(18, "ONNX opset of the graphs.", low=18, high=23)
    quantize: str = param("none", "Also write int8 graphs: none or dynamic (int8 weights of "
                          "MatMul / Gemm, activations quantised at run time).",
                          choices=QUANTIZE_METHODS)
    tolerance_of_range: float = param(
        1e-4, "Round-trip tolerance: largest float32 |ORT - torch| as a fraction of each action "
        "dimension's range (min..max of the training data, else 6 std).", low=0.0, high=1.0)
    check_steps: int = param(4, "Sampler steps of the k-step round-trip check.", low=2, high=100)
    check_batch: int = param(2, "Rows of the round-trip check (dynamic batch only).",
                             low=1, high=64)
    seed: int = param(0, "Seed of the round-trip check's random inputs and noise.", low=0)
    external_data: str = param(
        "auto", "Weights in a <graph>.onnx.data file beside each graph: auto (when they exceed "
        "1.5 GiB: protobuf caps a graph file at 2 GB), always or never.",
        choices=("auto", "always", "never"))
    task: str = param("", "VLAs: the instruction baked into the graphs (its prompt tokens "
                      "become constants; runners refuse another; PI05: the runner's default, "
                      "tokenised at run time); empty: the policy's default task. The compact "
                      "policy reads none.")

    def __post_init__(self) -> None:
        check_config(self)


class _ObservationGraph(nn.Module):
    """Base of the exported wrappers: positional graph inputs -> the policy's batch dict."""

    def __init__(self, policy: FlowMatchingPolicy, task: str | None) -> None:
        super().__init__()
        self.policy = policy
        self.task = task
        self.camera_keys = tuple(policy.robot.camera_keys)
        self.has_environment = bool(policy.robot.environment_state_names)
        self.state_prompt = policy.policy_type in STATE_PROMPT_POLICY_TYPES

    def context(self, observation: tuple[torch.Tensor, ...]):
        """The policy's context of the observation inputs (images, state or prompt tokens)."""
        if not self.state_prompt:
            return self.policy.encode(self.batch(observation))
        return state_prompt_context(self.policy, observation, self.task)

    def batch(self, observation: tuple[torch.Tensor, ...]) -> dict:
        cameras = len(self.camera_keys)
        batch = {"images": dict(zip(self.camera_keys, observation[:cameras])),
                 "state": observation[cameras]}
        if self.has_environment:
            batch["environment_state"] = observation[cameras + 1]
        if self.task is not None:
            # Python strings, so the tokeniser runs while tracing: its tokens are constants.
            batch["task"] = [self.task] * int(observation[cameras].shape[0])
        return batch


class OneStepGraph(_ObservationGraph):
    """Images, state (, environment state), noise ``(B, H, D)`` -> 1-NFE actions ``(B, H, A)``."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Actions ``(B, H, A)`` in robot units for the observation inputs and ``noise``."""
        noise = inputs[-1]
        context = self.context(inputs[:-1])
        rows = noise.shape[0]
        velocity = self.policy.velocity(noise, noise.new_zeros(rows), noise.new_ones(rows),
                                        context)
        return self.policy.to_robot_actions(noise - velocity)


class PrefixGraph(_ObservationGraph):
    """Images, state (, environment state) -> the context's tensors, flattened in pytree order."""

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The context's tensor leaves for the observation inputs."""
        return tuple(_pytree.tree_leaves(self.context(inputs)))


class ExpertGraph(nn.Module):
    """``x`` ``(B, H, D)``, ``s``, ``t`` ``(B,)``, context tensors -> velocity ``(B, H, D)``."""

    def __init__(self, policy: FlowMatchingPolicy, context_spec: _pytree.TreeSpec) -> None:
        super().__init__()
        self.policy = policy
        self.context_spec = context_spec

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The policy's ``velocity`` of ``(x, s, t, *context)``, the context rebuilt."""
        x, s, t, *context = inputs
        return self.policy.velocity(x, s, t, _pytree.tree_unflatten(context, self.context_spec))


class ActionsGraph(nn.Module):
    """Normalised chunk ``(B, H, D)`` -> robot units ``(B, H, A)``."""

    def __init__(self, policy: FlowMatchingPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The policy's ``to_robot_actions`` of the one input ``x``."""
        (x,) = inputs
        return self.policy.to_robot_actions(x)


def action_range(policy: FlowMatchingPolicy) -> np.ndarray:
    """Per-dimension action range ``(A,)`` in robot units (the scale of the tolerance).

    Max - min of the training data when the statistics have them, else 6 standard deviations.
    """
    stats = policy.normalization_stats()
    if stats is None:
        return np.ones(len(policy.robot.action_names))
    if stats.action_min is not None:
        spread = np.asarray(stats.action_max, np.float64) - stats.action_min
    else:
        spread = 6.0 * np.asarray(stats.action_std, np.float64)
    # A joint that never moved still gets a non-zero scale.
    return np.maximum(spread, 6.0 * np.asarray(stats.action_std, np.float64) * 1e-3)


def _observation_specs(policy: FlowMatchingPolicy, batch: str | int) -> list[dict]:
    robot = policy.robot
    specs = [tensor_spec(image_input_name(key), "image",
                         [batch, 3, robot.image_height, robot.image_width], "uint8",
                         camera_key=key) for key in robot.camera_keys]
    specs.append(tensor_spec("state", "state", [batch, len(robot.joint_names)], "float32",
                             names=list(robot.joint_names)))
    if robot.environment_state_names:
        specs.append(tensor_spec("environment_state", "environment_state",
                                 [batch, len(robot.environment_state_names)], "float32",
                                 names=list(robot.environment_state_names)))
    return specs


def random_observation(policy: FlowMatchingPolicy, rows: int,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Graph feeds of ``rows`` random observations: uint8 images, state ~ N(mean, std)."""
    robot = policy.robot
    stats = policy.normalization_stats()
    feeds = {image_input_name(key): rng.integers(
        0, 256, (rows, 3, robot.image_height, robot.image_width), dtype=np.uint8)
        for key in robot.camera_keys}
    for name, prefix, size in (("state", "state", len(robot.joint_names)),
                               ("environment_state", "environment_state",
                                len(robot.environment_state_names))):
        if name == "environment_state" and not size:
            continue
        mean = getattr(stats, f"{prefix}_mean", None) if stats is not None else None
        std = getattr(stats, f"{prefix}_std", None) if stats is not None else None
        values = rng.standard_normal((rows, size))
        if mean is not None:
            values = values * std + mean
        feeds[name] = values.astype(np.float32)
    return feeds


def _torch_batch(policy: FlowMatchingPolicy, feeds: dict[str, np.ndarray],
                 task: str | None) -> dict:
    batch = {"images": {key: torch.from_numpy(feeds[image_input_name(key)])
                        for key in policy.robot.camera_keys},
             "state": torch.from_numpy(feeds["state"])}
    if "environment_state" in feeds:
        batch["environment_state"] = torch.from_numpy(feeds["environment_state"])
    if task is not None:
        batch["task"] = [task] * len(feeds["state"])
    return batch


def graph_task(policy: FlowMatchingPolicy, config: OnnxExportConfig) -> str | None:
    """The prompt traced into a VLA's graphs (``config.task`` or its default), None for none."""
    if policy.policy_type not in PROMPT_POLICY_TYPES:
        return None
    return config.task or str(getattr(getattr(policy, "config", None), "default_task", ""))


def _export_graph(module: nn.Module, args: tuple, path: Path, input_names: list[str],
                  output_names: list[str], batch: str | int, opset: int,
                  external_data: bool) -> None:
    dynamic_shapes = None
    if batch == BATCH_DIM:
        rows = torch.export.Dim("batch", min=1, max=4096)
        # Every wrapper takes ``*inputs``: one var-positional entry holding all inputs.
        dynamic_shapes = (tuple({0: rows} for _ in args),)
    with warnings.catch_warnings():
        # The exporter's deprecation chatter concerns torch internals, not this graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=input_names,
                          output_names=output_names, dynamo=True, opset_version=opset,
                          dynamic_shapes=dynamic_shapes, external_data=external_data,
                          verbose=False)


def _errors(actual: np.ndarray, expected: np.ndarray, scale: np.ndarray) -> dict:
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return {"max_abs_error": float(difference.max()),
            "max_error_of_range": float((difference / scale).max()),
            "finite": bool(np.all(np.isfinite(actual)))}


def _round_trip(folder: Path, manifest: dict, policy: FlowMatchingPolicy, precision: str,
                config: OnnxExportConfig, rows: int) -> dict:
    """ORT vs torch on random inputs: 1 step (fused graph) and k steps of both modes (pieces)."""
    from snapflow_ros.export.onnx_runner import OnnxGraphs
    from snapflow_ros.snapflow.sampler import predict_action_chunk

    rng = np.random.default_rng(config.seed)
    feeds = random_observation(policy, rows, rng)
    noise = rng.standard_normal((rows, policy.chunk_size, policy.action_dim), dtype=np.float32)
    if manifest.get("state_prompt"):
        from snapflow_ros.export.prompt_tokens import StatePromptSpec

        # The runner's tokens on the ONNX side, LeRobot's processor on the torch side.
        feeds = state_prompt_feeds(feeds, folder, StatePromptSpec.from_dict(
            manifest["state_prompt"]), manifest["task"])
    graphs = OnnxGraphs(folder, manifest, precision=precision, intra_op_threads=0)
    scale = action_range(policy)
    batch = _torch_batch(policy, feeds, manifest["task"])
    results = {}
    for label, steps, mode in (("one_step", 1, "jump"), (f"jump_{config.check_steps}_steps",
                                config.check_steps, "jump"),
                               (f"euler_{config.check_steps}_steps", config.check_steps,
                                "euler")):
        expected = predict_action_chunk(policy, batch, num_steps=steps, mode=mode,
                                        noise=torch.from_numpy(noise)).numpy()
        results[label] = _errors(graphs.predict(feeds, noise, steps, mode), expected, scale)
    # The pieces run one step too: they must agree with the fused graph.
    expected = predict_action_chunk(policy, batch, num_steps=1, noise=torch.from_numpy(noise))
    pieces = graphs.to_robot_actions(graphs.sample(graphs.encode(feeds), noise, 1))
    results["pieces_one_step"] = _errors(pieces, expected.numpy(), scale)
    worst = max(entry["max_error_of_range"] for entry in results.values())
    return {"checks": results, "rows": rows, "seed": config.seed,
            "max_abs_error": max(entry["max_abs_error"] for entry in results.values()),
            "max_error_of_range": worst,
            "finite": all(entry["finite"] for entry in results.values()),
            "passed": bool(worst <= config.tolerance_of_range
                           and all(entry["finite"] for entry in results.values()))}


def _quantize(folder: Path, role: str, external_data: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = folder / GRAPH_FILES[role]
    target = folder / f"{role}.int8.onnx"
    before = set(folder.iterdir())
    # MatMul / Gemm only: int8 convolutions (ConvInteger) ran slower than float32 on CPUs.
    # 7-bit weights: without VNNI, x86 int8 kernels add pairs of u8 x s8 products in int16 with
    # saturation, and full-range weights overflowed (round trip 0.20 of the action range on a
    # trained policy on an AVX2 CPU, 0.011 with this).
    options = dict(op_types_to_quantize=list(INT8_OP_TYPES), weight_type=QuantType.QInt8,
                   per_channel=True, reduce_range=INT8_REDUCE_RANGE,
                   use_external_data_format=external_data)
    prepared = folder / f".{role}.prepared.onnx"
    try:
        if external_data:
            # The pre-processing pass names external weight files after their tensors.
            quantize_dynamic(str(source), str(target), **options)
        else:
            # Shape inference and graph fusions first, as ONNX Runtime's quantisation guide asks.
            quant_pre_process(str(source), str(prepared))
            quantize_dynamic(str(prepared), str(target), **options)
    finally:
        keep = {target, target.with_name(f"{target.name}.data")}
        for leftover in set(folder.iterdir()) - before - keep:
            leftover.unlink(missing_ok=True)
    return target


def _file_entry(path: Path) -> dict:
    """A graph file's manifest entry: name and hash, and its external weights file if any."""
    entry = {"file": path.name, "sha256": file_sha256(path)}
    data = path.with_name(f"{path.name}.data")
    if data.is_file():
        entry.update(data_file=data.name, data_bytes=data.stat().st_size,
                     data_sha256=file_sha256(data))
    return entry


def _checkpoint_record(checkpoint: Path) -> dict:
    from snapflow_ros.policies.checkpoint import (
        CONFIG_FILE,
        NORMALIZATION_FILE,
        WEIGHTS_FILE,
        read_checkpoint_info,
    )

    info = read_checkpoint_info(checkpoint)["info"]
    record = {"path": str(checkpoint), "stage": info.get("stage"), "step": info.get("step")}
    for label, name in (("weights_sha256", WEIGHTS_FILE), ("config_sha256", CONFIG_FILE),
                        ("normalization_sha256", NORMALIZATION_FILE)):
        if (checkpoint / name).is_file():
            record[label] = file_sha256(checkpoint / name)
    return record


def _versions() -> dict:
    import onnx
    import onnxruntime

    from snapflow_ros import __version__

    return {"snapflow_ros": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "python": sys.version.split()[0]}


def export_onnx(checkpoint: str | Path, out: str | Path, config: OnnxExportConfig, *,
                overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Export ``checkpoint`` (or a run's latest) into folder ``out``; returns the manifest.

    Raises :class:`ConfigError` for bad input (nothing written). The folder is written even when
    the float32 round-trip fails (to inspect it); its manifest then says so, runners refuse it,
    and ``manifest["round_trip"]["float32"]["passed"]`` is False.
    """
    from snapflow_ros.policies.checkpoint import load_policy, resolve_checkpoint

    if Path(out).exists() and not overwrite:
        raise ConfigError(f"{out} exists: choose another --out or pass --overwrite")
    checkpoint = resolve_checkpoint(checkpoint)
    return export_policy_onnx(load_policy(checkpoint, device="cpu"), out, config,
                              overwrite=overwrite, log=log, source=_checkpoint_record(checkpoint))


def export_policy_onnx(policy: FlowMatchingPolicy, out: str | Path, config: OnnxExportConfig, *,
                       overwrite: bool = False, log: Callable[[str], None] = print,
                       source: dict | None = None) -> dict:
    """Export a loaded ``policy`` (a CPU copy when it lives elsewhere) as :func:`export_onnx` does.

    ``source`` is the manifest's ``source_checkpoint`` record (None: built in memory).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists: choose another --out or pass --overwrite")
    where = source["path"] if source else "policy"
    if policy.policy_type not in SUPPORTED_POLICY_TYPES:
        raise ConfigError(f"{where}: ONNX export supports {', '.join(SUPPORTED_POLICY_TYPES)} "
                          f"policies; this one is {policy.policy_type!r}")
    names = [image_input_name(key) for key in policy.robot.camera_keys]
    if len(set(names)) != len(names):
        raise ConfigError(f"camera keys {list(policy.robot.camera_keys)} give the same graph "
                          f"input names {names}")
    if policy.device.type != "cpu":
        policy = copy.deepcopy(policy).to("cpu")
    policy = policy.eval()
    batch: str | int = BATCH_DIM if config.batch_size == 0 else config.batch_size
    rows = config.check_batch if batch == BATCH_DIM else int(batch)
    task = graph_task(policy, config)
    if task is not None and batch == BATCH_DIM:
        raise ConfigError(f"{where}: a {policy.policy_type} prompt is tokenised while tracing, "
                          "for a fixed number of rows: export it with --batch N")
    # Traced on other inputs than the check's: anything the trace froze into a constant that
    # should have followed the inputs shows up as a round-trip error.
    example = random_observation(policy, rows, np.random.default_rng(config.seed + 1))
    observation = tuple(torch.from_numpy(value) for value in example.values())
    horizon, width = policy.chunk_size, policy.action_dim
    noise = torch.zeros(rows, horizon, width)
    observation_specs = _observation_specs(policy, batch)
    prompt_spec = None
    if policy.policy_type in STATE_PROMPT_POLICY_TYPES:
        from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

        prompt_spec = state_prompt_spec(policy, where)
        # The state reaches the model only through the prompt: the tokens replace it.
        with torch.no_grad():
            processed = policy.preprocess(_torch_batch(policy, example, task))
        observation = (*observation[:len(policy.robot.camera_keys)],
                       processed[OBS_LANGUAGE_TOKENS].long().cpu(),
                       processed[OBS_LANGUAGE_ATTENTION_MASK].bool().cpu())
        length = prompt_spec.max_length
        observation_specs = [
            *observation_specs[:len(policy.robot.camera_keys)],
            tensor_spec("prompt_tokens", "prompt_tokens", [batch, length], "int64"),
            tensor_spec("prompt_mask", "prompt_mask", [batch, length], "bool")]
    with torch.no_grad():
        context_leaves, context_spec = _pytree.tree_flatten(
            policy.encode(_torch_batch(policy, example, task)))
    context_specs = [tensor_spec(f"context_{i}", "context", [batch, *leaf.shape[1:]],
                                 str(leaf.dtype).removeprefix("torch."))
                     for i, leaf in enumerate(context_leaves)]
    chunk_spec = [batch, horizon, width]
    time_specs = [tensor_spec("s", "target_time", [batch], "float32"),
                  tensor_spec("t", "time", [batch], "float32")]
    action_names = list(policy.robot.action_names)
    actions_spec = tensor_spec("actions", "actions", [batch, horizon, len(action_names)],
                               "float32", names=action_names)
    graphs = {
        "one_step": (OneStepGraph(policy, task), (*observation, noise),
                     [*observation_specs, tensor_spec("noise", "noise", chunk_spec, "float32")],
                     [actions_spec]),
        "prefix": (PrefixGraph(policy, task), observation, observation_specs, context_specs),
        "expert": (ExpertGraph(policy, context_spec),
                   (noise, torch.zeros(rows), torch.ones(rows), *context_leaves),
                   [tensor_spec("x", "chunk", chunk_spec, "float32"), *time_specs,
                    *context_specs],
                   [tensor_spec("velocity", "velocity", chunk_spec, "float32")]),
        "actions": (ActionsGraph(policy), (noise,),
                    [tensor_spec("x", "chunk", chunk_spec, "float32")], [actions_spec]),
    }
    weight_bytes = sum(t.numel() * t.element_size()
                       for t in (*policy.parameters(), *policy.buffers()))
    external = config.external_data == "always" or (
        config.external_data == "auto" and weight_bytes > 1.5 * 2**30)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        manifest_graphs = {}
        if prompt_spec is not None:
            tokenizer_file = write_tokenizer(policy, work)
        for role, (module, args, inputs, outputs) in graphs.items():
            log(f"exporting {role} graph")
            _export_graph(module.eval(), args, work / GRAPH_FILES[role],
                          [spec["name"] for spec in inputs], [spec["name"] for spec in outputs],
                          batch, config.opset, external)
            manifest_graphs[role] = {"inputs": inputs, "outputs": outputs, "files": {
                "float32": _file_entry(work / GRAPH_FILES[role])}}
        stats = policy.normalization_stats()
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "policy_type": policy.policy_type, "policy_config": policy.policy_config_dict(),
            "robot": config_to_dict(policy.robot), "chunk_size": int(horizon),
            "action_dim": int(width), "opset": config.opset, "batch": batch,
            "normalization": stats.to_dict() if stats is not None else None,
            "normalization_in_graph": True, "task": task,
            "source_checkpoint": source,
            "export": config_to_dict(config), "versions": _versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "graphs": manifest_graphs,
            "round_trip": {"tolerance_of_range": config.tolerance_of_range,
                           "action_range": action_range(policy).tolist()},
        }
        if prompt_spec is not None:
            manifest["state_prompt"] = dict(prompt_spec.to_dict(),
                                            tokenizer_sha256=file_sha256(tokenizer_file))
        manifest["round_trip"]["float32"] = _round_trip(work, manifest, policy, "float32",
                                                        config, rows)
        if config.quantize == "dynamic":
            log("quantising (dynamic int8)")
            for role in GRAPH_ROLES:
                target = _quantize(work, role, external)
                manifest_graphs[role]["files"]["int8"] = dict(
                    _file_entry(target), method="dynamic", op_types=list(INT8_OP_TYPES),
                    weight_bits=7 if INT8_REDUCE_RANGE else 8, per_channel=True)
            manifest["round_trip"]["int8"] = _round_trip(work, manifest, policy, "int8",
                                                         config, rows)
        write_manifest(work, manifest)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def format_round_trip(manifest: dict) -> str:
    """The round-trip lines ``snapflow export onnx`` prints, one per precision and check."""
    lines = []
    tolerance = manifest["round_trip"]["tolerance_of_range"]
    for precision in ("float32", "int8"):
        result = manifest["round_trip"].get(precision)
        if result is None:
            continue
        verdict = ("ok" if result["passed"] else "ABOVE TOLERANCE") if precision == "float32" \
            else "recorded (int8 is not held to the tolerance)"
        lines.append(f"round trip {precision}: max |ORT - torch| {result['max_abs_error']:.3g} "
                     f"(robot units), {result['max_error_of_range']:.3g} of the action range "
                     f"(tolerance {tolerance:g}): {verdict}")
        for label, entry in result["checks"].items():
            lines.append(f"  {label}: {entry['max_abs_error']:.3g} "
                         f"({entry['max_error_of_range']:.3g} of range)")
    return "\n".join(lines)
