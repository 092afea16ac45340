# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The policy node's configuration: one frozen dataclass, the source of its ROS parameters.

Fields marked ``runtime=True`` may change while the node is active (``ros2 param set``); check a
proposed change with :func:`validate_runtime_change` and apply it with
:func:`snapflow_ros.config_fields.replace_config`. Changes to the chunk schedule (``n_act``,
``prefetch_threshold``, blending) take effect from the next chunk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from snapflow_ros.config_fields import ConfigError, check_config, param, replace_config

DEVICES = ("auto", "cpu", "cuda")
# The two ways :func:`snapflow_ros.snapflow.sampler.predict_action_chunk` integrates k > 1 steps
# with a SnapFlow model: chained (s, t) jumps, or plain Euler with the local velocity (s = t).
SAMPLER_MODES = ("jump", "euler")
# How the inference path is accelerated (see snapflow_ros.runtime.fast_inference): "none" is
# the plain sampler; the others run the same computation through static buffers.
ACCELERATIONS = ("none", "compile", "cuda_graph", "compile_cuda_graph")
INFERENCE_DTYPES = ("float32", "bfloat16")
OUTPUT_MODES = ("trajectory", "stream")
BLENDINGS = ("none", "linear", "exponential")
FIRST_COMMAND_MODES = ("refuse", "ramp")
DEACTIVATE_BEHAVIORS = ("hold", "stop")
CAMERA_TRANSPORTS = ("raw", "compressed")
QOS_RELIABILITIES = ("reliable", "best_effort")


@dataclasses.dataclass(frozen=True)
class PolicyRuntimeConfig:
    """Everything the policy node needs: model, topics, chunk schedule, safety, QoS."""

    # --- model ----------------------------------------------------------------------------------
    checkpoint: str = param("", "Checkpoint directory (weights, config, normalisation stats).")
    device: str = param("auto", "Inference device; auto picks cuda when available.",
                        choices=DEVICES)
    seed: int = param(-1, "Seed of the sampling noise; -1 draws fresh noise every run.", low=-1)
    torch_threads: int = param(
        1, "CPU threads torch may use for inference (0: torch's default, one per core). One "
        "leaves a core to the ROS executor: on 2 cores two threads were 10x slower under load "
        "(docs/performance.md); GPU inference does not depend on it.", low=0, high=256)
    num_steps: int = param(1, "Sampler steps per chunk (1 = SnapFlow's one-step jump).",
                           low=1, high=100, runtime=True)
    sampler_mode: str = param("jump", "k-step integration: chained jumps or local Euler.",
                              choices=SAMPLER_MODES, runtime=True)
    wait_for_fresh_image: bool = param(
        True, "When a chunk is due, wait (at most max_input_age_s) for a camera frame that "
        "arrives after that moment: the chunk starts from a fresh view, and the prefetch "
        "threshold absorbs the wait (up to one camera period).", runtime=True)
    task: str = param("", "Task instruction given to language-conditioned policies.",
                      runtime=True)
    chunk_size: int = param(0, "Chunk length H of the loaded checkpoint (0 = not loaded yet).",
                            low=0, ros=False)
    accelerate: str = param(
        "none", "Inference fast path: none (plain sampler), compile (torch.compile of the expert "
        "call), cuda_graph (prefix and sampler replayed as CUDA graphs; CUDA only) or "
        "compile_cuda_graph (both). Compiling / capturing happens in configure.",
        choices=ACCELERATIONS)
    inference_dtype: str = param(
        "float32", "Precision of prefix and expert: float32, or bfloat16 autocast (GPUs; changes "
        "actions by about 1% of their spread).", choices=INFERENCE_DTYPES)

    # --- robot interface ------------------------------------------------------------------------
    joint_names: tuple[str, ...] = param(
        (), "State joints picked from JointState, in model order (empty = the checkpoint's)."
    )
    joint_state_topic: str = param("joint_states", "sensor_msgs/JointState input topic.")
    camera_topics: tuple[str, ...] = param(
        ("camera/image_raw",), "Image topics, one per entry of camera_keys."
    )
    camera_keys: tuple[str, ...] = param(
        ("top",), "Checkpoint camera key fed by the camera topic at the same index."
    )
    camera_transports: tuple[str, ...] = param(
        (), "Per camera topic: raw (sensor_msgs/Image) or compressed (empty = all raw).",
        choices=CAMERA_TRANSPORTS,
    )
    expected_image_height: int = param(
        0, "Reject camera images of another height (pixels, 0 = any).", low=0, high=16384
    )
    expected_image_width: int = param(
        0, "Reject camera images of another width (pixels, 0 = any).", low=0, high=16384
    )
    task_topic: str = param(
        "task", "std_msgs/String topic (latched) whose text replaces `task` (empty = off).")
    command_topic: str = param("joint_trajectory", "trajectory_msgs/JointTrajectory output topic.")

    # --- chunk execution ------------------------------------------------------------------------
    control_rate_hz: float = param(50.0, "Rate at which chunk actions are executed (Hz).",
                                   low=1.0, high=1000.0)
    output_mode: str = param(
        "trajectory", "trajectory: one JointTrajectory per chunk; stream: one point per tick.",
        choices=OUTPUT_MODES,
    )
    n_act: int = param(10, "Actions executed from each chunk (1..chunk size).",
                       low=1, high=10000, runtime=True)
    prefetch_threshold: int = param(
        3, "Start the next inference when this many actions of the chunk remain.",
        low=0, high=10000, runtime=True,
    )
    blending: str = param("linear", "Cross-fade from the previous chunk into a new one.",
                          choices=BLENDINGS, runtime=True)
    blend_steps: int = param(5, "Length of the cross-fade (control ticks).",
                             low=1, high=10000, runtime=True)
    blend_decay: float = param(3.0, "Steepness of the exponential cross-fade (1/overlap).",
                               low=0.01, high=100.0, runtime=True)
    deactivate_behavior: str = param(
        "hold", "On deactivate: hold the last command, or stop publishing.",
        choices=DEACTIVATE_BEHAVIORS,
    )

    # --- safety ---------------------------------------------------------------------------------
    dry_run: bool = param(False, "Compute and report commands but publish none.", runtime=True)
    max_input_age_s: float = param(
        0.5, "Hold when a camera or the joint state is older than this (s).",
        low=0.001, high=60.0, runtime=True,
    )
    max_stamp_lead_s: float = param(
        0.1, "Reject inputs whose header stamp is this far ahead of the node clock (s).",
        low=0.0, high=60.0,
    )
    limit_joint_names: tuple[str, ...] = param(
        (), "Joints with position limits; joints not listed are not clamped."
    )
    lower_limits: tuple[float, ...] = param(
        (), "Lower position limit of each joint in limit_joint_names (rad or m)."
    )
    upper_limits: tuple[float, ...] = param(
        (), "Upper position limit of each joint in limit_joint_names (rad or m)."
    )
    max_delta_per_tick: tuple[float, ...] = param(
        (0.05,), "Largest command change per control tick: one value, or one per commanded joint.",
        low=1e-9,
    )
    first_command_mode: str = param(
        "ramp", "A first command far from the measured position: refuse it, or ramp to it.",
        choices=FIRST_COMMAND_MODES,
    )
    first_command_max_distance: float = param(
        0.2, "Largest per-joint distance of a first command from the measured position.",
        low=0.0, high=1000.0,
    )
    first_command_ramp_ticks: int = param(
        50, "Control ticks over which a far first command is ramped in.", low=1, high=100000
    )

    # --- transport and reporting ----------------------------------------------------------------
    image_qos_reliability: str = param(
        "reliable", "Camera QoS (best_effort drops large raw images on default Fast DDS).",
        choices=QOS_RELIABILITIES,
    )
    image_qos_depth: int = param(1, "Camera subscription queue depth.", low=1, high=1000)
    joint_state_qos_reliability: str = param("reliable", "JointState QoS reliability.",
                                             choices=QOS_RELIABILITIES)
    joint_state_qos_depth: int = param(10, "JointState subscription queue depth.",
                                       low=1, high=1000)
    command_qos_depth: int = param(10, "Command publisher queue depth.", low=1, high=1000)
    diagnostics_period_s: float = param(1.0, "Period of the diagnostics report (s).",
                                        low=0.05, high=3600.0)
    latency_window: int = param(500, "Inferences kept for the latency percentiles.",
                                low=1, high=1000000)

    def __post_init__(self) -> None:
        check_config(self)
        if not self.camera_keys:
            raise ConfigError("camera_keys: at least one camera is required")
        if len(self.camera_topics) != len(self.camera_keys):
            raise ConfigError(
                f"camera_topics has {len(self.camera_topics)} entries, camera_keys has "
                f"{len(self.camera_keys)}: they are matched by index"
            )
        if self.camera_transports and len(self.camera_transports) != len(self.camera_topics):
            raise ConfigError(
                f"camera_transports has {len(self.camera_transports)} entries for "
                f"{len(self.camera_topics)} camera topics (leave it empty for all raw)"
            )
        for label in ("camera_keys", "camera_topics", "joint_names", "limit_joint_names"):
            names = getattr(self, label)
            if len(set(names)) != len(names):
                raise ConfigError(f"{label} has duplicates: {list(names)}")
        if (self.expected_image_height == 0) != (self.expected_image_width == 0):
            raise ConfigError("expected_image_height and expected_image_width: set both or none")
        n_limits = len(self.limit_joint_names)
        if len(self.lower_limits) != n_limits or len(self.upper_limits) != n_limits:
            raise ConfigError(
                f"limit_joint_names ({n_limits}), lower_limits ({len(self.lower_limits)}) and "
                f"upper_limits ({len(self.upper_limits)}) must have the same length"
            )
        for name, low, high in zip(self.limit_joint_names, self.lower_limits, self.upper_limits):
            if low > high:
                raise ConfigError(f"joint {name}: lower limit {low} > upper limit {high}")
        if not self.max_delta_per_tick:
            raise ConfigError("max_delta_per_tick: give one value, or one per joint")
        if self.chunk_size and self.n_act > self.chunk_size:
            raise ConfigError(f"n_act={self.n_act} exceeds the chunk size {self.chunk_size}")

    @property
    def control_period_s(self) -> float:
        """One control tick (s)."""
        return 1.0 / self.control_rate_hz

    def camera_transport(self, index: int) -> str:
        """Transport (raw or compressed) of camera topic ``index``."""
        return self.camera_transports[index] if self.camera_transports else "raw"


def runtime_fields() -> tuple[str, ...]:
    """Names of the fields that may change while the node is active."""
    return tuple(f.name for f in dataclasses.fields(PolicyRuntimeConfig)
                 if f.metadata.get("runtime"))


def validate_runtime_change(config: PolicyRuntimeConfig, name: str, value: Any) -> tuple[bool, str]:
    """Check a proposed runtime change of field ``name``: ``(True, "")`` or ``(False, reason)``."""
    fields = {f.name: f for f in dataclasses.fields(PolicyRuntimeConfig)}
    if name not in fields:
        return False, f"unknown parameter '{name}'"
    if not fields[name].metadata.get("runtime"):
        return False, f"'{name}' is read-only while the node runs; set it before configure"
    try:
        replace_config(config, **{name: value})
    except ConfigError as exc:
        return False, str(exc)
    return True, ""


def resolve_for_policy(config: PolicyRuntimeConfig, joint_names: Sequence[str],
                       action_names: Sequence[str], camera_keys: Sequence[str],
                       chunk_size: int) -> PolicyRuntimeConfig:
    """Check ``config`` against a loaded checkpoint and fill in its joints and chunk size.

    Raises :class:`ConfigError` naming every mismatch (cameras, joints, limited joints, the
    number of per-joint rate limits, ``n_act`` beyond the chunk).
    """
    problems = []
    if set(config.camera_keys) != set(camera_keys):
        problems.append(
            f"camera_keys {list(config.camera_keys)} do not match the checkpoint's "
            f"{list(camera_keys)}"
        )
    if config.joint_names and set(config.joint_names) != set(joint_names):
        missing = [n for n in joint_names if n not in config.joint_names]
        extra = [n for n in config.joint_names if n not in joint_names]
        problems.append(f"joint_names differ from the checkpoint's (missing {missing}, "
                        f"unexpected {extra})")
    unknown = [n for n in config.limit_joint_names if n not in action_names]
    if unknown:
        problems.append(f"limit_joint_names {unknown} are not commanded joints "
                        f"{list(action_names)}")
    if len(config.max_delta_per_tick) not in (1, len(action_names)):
        problems.append(f"max_delta_per_tick has {len(config.max_delta_per_tick)} values for "
                        f"{len(action_names)} commanded joints")
    if config.n_act > chunk_size:
        problems.append(f"n_act={config.n_act} exceeds the checkpoint's chunk size {chunk_size}")
    if problems:
        raise ConfigError("configuration does not fit the checkpoint: " + "; ".join(problems))
    # The model defines the order of its state vector; the config only names the joints.
    return dataclasses.replace(config, joint_names=tuple(joint_names), chunk_size=int(chunk_size))
