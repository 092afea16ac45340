# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Assemble a LeRobot VLA backend for a robot: :func:`build_lerobot_vla`.

Three starting points: a stock LeRobot checkpoint folder (the teacher), a ``snapflow_*`` LeRobot
checkpoint folder, or nothing (random initialisation, e.g. at the real dimensions for latency
runs); and, for our checkpoints, the recorded LeRobot config (the weights load afterwards). In
every case the LeRobot config gets the robot's features (cameras, state and action sizes) and
our options (dtype, image size, chunk size, step count), and the processors are LeRobot's,
built from our normalisation statistics or loaded from the checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import LeRobotVLAConfig
from snapflow_ros.policies.lerobot_vla.lerobot_checkpoint import (
    LEROBOT_DIR,
    load_stock_checkpoint,
    read_checkpoint_type,
    resolve_local_backbone,
)
from snapflow_ros.policies.lerobot_vla.processor_lerobot_vla import lerobot_processors
from snapflow_ros.policies.lerobot_vla.target_time import checkpoint_module_calls
from snapflow_ros.policies.normalization import NormalizationStats

if TYPE_CHECKING:
    from snapflow_ros.policies.lerobot_vla.modeling_lerobot_vla import LeRobotVLAPolicy

_RESTORED_FIELDS = ("device", "vlm_model_name", "tokenizer_name")
"""Fields of our options that still apply when a recorded LeRobot config is restored."""


def robot_features(robot: RobotInterface) -> dict[str, dict]:
    """LeRobot input / output features for ``robot``: cameras, joint state, actions."""
    from lerobot.configs import FeatureType, PolicyFeature

    if not robot.camera_keys:
        raise ConfigError("a LeRobot VLA needs at least one camera")
    if not robot.joint_names or not robot.action_names:
        raise ConfigError("a LeRobot VLA needs joint_names and action_names")
    inputs = {f"observation.images.{key}": PolicyFeature(
        FeatureType.VISUAL, (3, robot.image_height, robot.image_width))
        for key in robot.camera_keys}
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (len(robot.joint_names),))
    outputs = {"action": PolicyFeature(FeatureType.ACTION, (len(robot.action_names),))}
    return {"input_features": inputs, "output_features": outputs}


def _config_changes(cls: type[LeRobotVLAPolicy], config: LeRobotVLAConfig,
                    robot: RobotInterface) -> dict[str, Any]:
    """LeRobot config fields our options and the robot decide."""
    changes: dict[str, Any] = dict(robot_features(robot))
    changes.update(device=config.device, target_time_hidden_dim=config.target_time_hidden_dim,
                   lerobot_sampling=config.lerobot_sampling)
    if config.chunk_size:
        changes.update(chunk_size=config.chunk_size, n_action_steps=config.chunk_size)
    changes.update(cls.lerobot_config_changes(config))
    changes.update(config.lerobot_overrides)
    return changes


def _apply(lerobot_config: Any, changes: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(lerobot_config)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"unknown {type(lerobot_config).__name__} field(s) in "
                          f"lerobot_overrides: {', '.join(unknown)}")
    for key, value in changes.items():
        setattr(lerobot_config, key, value)
    lerobot_config.__post_init__()
    return lerobot_config


def _decode_lerobot_config(cls: type[LeRobotVLAPolicy], data: dict) -> Any:
    import draccus

    data = dict(data)
    kind = data.pop("type", None)
    config_class = cls.lerobot_policy_class.config_class
    if (kind or "").removeprefix("snapflow_") != cls.lerobot_policy_class.name.removeprefix(
            "snapflow_"):
        raise ConfigError(f"lerobot_config has unsupported type {kind!r} for "
                          f"{cls.__name__}")
    return draccus.decode(config_class, data)


def _use_mean_std(lerobot_config: Any) -> None:
    """Normalise state and action with mean / std: the statistics our data pipeline computes."""
    from lerobot.configs import NormalizationMode

    mapping = dict(lerobot_config.normalization_mapping)
    for key in ("STATE", "ACTION"):
        if mapping.get(key) not in (NormalizationMode.MEAN_STD, NormalizationMode.IDENTITY):
            mapping[key] = NormalizationMode.MEAN_STD
    lerobot_config.normalization_mapping = mapping


def _check_dims(lerobot_config: Any, robot: RobotInterface) -> None:
    for label, size, limit in (("joints", len(robot.joint_names), lerobot_config.max_state_dim),
                               ("actions", len(robot.action_names),
                                lerobot_config.max_action_dim)):
        if size > limit:
            raise ConfigError(f"the robot has {size} {label} but the model takes at most "
                              f"{limit} (max_{'state' if label == 'joints' else 'action'}_dim)")


def _from_pretrained(cls: type[LeRobotVLAPolicy], pretrained: Path, changes: dict[str, Any],
                     robot: RobotInterface, stats: NormalizationStats | None) -> Any:
    """The LeRobot policy of a ``snapflow_*`` or stock LeRobot checkpoint folder."""
    from lerobot.configs import PreTrainedConfig

    kind = cls.lerobot_policy_class.name.removeprefix("snapflow_")
    kind_on_disk = read_checkpoint_type(pretrained)
    if kind_on_disk.removeprefix("snapflow_") != kind:
        raise ConfigError(f"{pretrained} is a '{kind_on_disk}' checkpoint, not {kind}")
    if kind_on_disk.startswith("snapflow_"):
        cfg = _apply(PreTrainedConfig.from_pretrained(pretrained), changes)
        resolve_local_backbone(cfg, pretrained)
        if stats is not None:
            _use_mean_std(cfg)
        _check_dims(cfg, robot)
        return cls.lerobot_policy_class.from_pretrained(pretrained, config=cfg)
    if stats is not None:
        probe = PreTrainedConfig.from_pretrained(pretrained)
        _use_mean_std(probe)
        changes["normalization_mapping"] = probe.normalization_mapping
    lerobot_policy = load_stock_checkpoint(pretrained, **changes)
    _check_dims(lerobot_policy.config, robot)
    return lerobot_policy


def build_lerobot_vla(cls: type[LeRobotVLAPolicy], config: LeRobotVLAConfig,
                      robot: RobotInterface, stats: NormalizationStats | None, *,
                      lerobot_config: dict | None = None,
                      checkpoint_dir: str | Path | None = None,
                      load_weights: bool = True) -> LeRobotVLAPolicy:
    """Backend ``cls`` for ``robot``: restored, from ``config.pretrained_path``, or random.

    ``lerobot_config`` (a LeRobot config mapping our checkpoints record) rebuilds exactly that
    architecture without loading weights (the checkpoint loader fills them);
    ``checkpoint_dir`` is where backbone files and processors were saved with it. Without it,
    ``config.pretrained_path`` loads a LeRobot checkpoint folder (unless ``load_weights`` is
    False), or the model starts randomly initialised.
    """
    saved = Path(checkpoint_dir) / LEROBOT_DIR if checkpoint_dir is not None else None
    changes = _config_changes(cls, config, robot)
    pretrained = Path(config.pretrained_path) if config.pretrained_path else None
    processor_dir = saved
    if lerobot_config is not None:
        # Restoring our checkpoint: the recorded architecture, weights loaded by the caller.
        cfg = _decode_lerobot_config(cls, lerobot_config)
        restore = {k: v for k, v in changes.items() if k in _RESTORED_FIELDS}
        _apply(cfg, {**robot_features(robot), **restore})
        resolve_local_backbone(cfg, saved)
        if stats is not None:
            _use_mean_std(cfg)
        _check_dims(cfg, robot)
        lerobot_policy = cls.lerobot_policy_class(cfg)
    elif pretrained is not None and load_weights:
        processor_dir = pretrained
        lerobot_policy = _from_pretrained(cls, pretrained, changes, robot, stats)
    else:
        cfg = _apply(cls.lerobot_policy_class.config_class(), changes)
        for key, value in cls.offline_fields.items():
            if key not in config.lerobot_overrides:
                setattr(cfg, key, value)
        _use_mean_std(cfg)
        _check_dims(cfg, robot)
        lerobot_policy = cls.lerobot_policy_class(cfg)
    lerobot_policy.reset()
    cls.cast_weights(lerobot_policy, config.dtype)
    if config.gradient_checkpointing:
        mlps = [m for m in lerobot_policy.model.modules() if type(m).__name__.endswith("MLP")]
        checkpoint_module_calls(mlps)
    has_processors = processor_dir is not None and (
        processor_dir / "policy_preprocessor.json").is_file()
    if stats is None and not has_processors:
        if lerobot_config is not None:
            raise ConfigError(
                "this checkpoint keeps its normalisation only in its LeRobot processors "
                f"(<checkpoint>/{LEROBOT_DIR}); rebuild it with checkpoint_dir=<checkpoint>")
        stats = NormalizationStats.identity(len(robot.joint_names), len(robot.action_names))
        _use_mean_std(lerobot_policy.config)
    pre, post = lerobot_processors(lerobot_policy.config, stats, processor_dir)
    return cls(lerobot_policy, pre, post, robot, config, stats)
