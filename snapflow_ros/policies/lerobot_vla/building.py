# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Assemble a LeRobot VLA backend for a robot: :func:`build_lerobot_vla`.

Three starting points: a stock LeRobot checkpoint folder (the teacher), a ``snapflow_*`` LeRobot
checkpoint folder, or nothing (random initialisation, e.g. at the real dimensions for latency
runs); and, for our checkpoints, the recorded LeRobot config (the weights load afterwards). In
every case the LeRobot config gets the robot's features (cameras, state and action sizes) and
our options (dtype, image size, chunk size, step count), and the processors are LeRobot's,
built from our normalisation statistics or loaded from the checkpoint. Each backend keeps the
normalisation modes of its LeRobot config (PI05: QUANTILES for state and action; SmolVLA /
PI0: MEAN_STD): our statistics carry mean / std, min / max and q01 / q99.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.lerobot_vla.config_migration import (
    migrate_lerobot_config,
    read_lerobot_config,
)
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import LeRobotVLAConfig
from snapflow_ros.policies.lerobot_vla.hub_cache import resolve_checkpoint_folder
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

LOGGER = logging.getLogger(__name__)

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
    # LeRobot's VLAs read one state vector: the environment state (object poses) rides on it,
    # after the joints, within max_state_dim.
    state_size = len(robot.joint_names) + len(robot.environment_state_names)
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (state_size,))
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
    return draccus.decode(config_class, migrate_lerobot_config(
        data, config_class, source="the checkpoint's lerobot_config"))


STATS_OF_MODE = {"MEAN_STD": ("mean", "std"), "MIN_MAX": ("min", "max"),
                  "QUANTILES": ("q01", "q99"), "QUANTILE10": ("q10", "q90"), "IDENTITY": ()}
"""The statistics each LeRobot ``NormalizationMode`` reads (LeRobot's stats keys)."""


def _keep_normalization_modes(lerobot_config: Any, stats: NormalizationStats, *,
                              restoring: bool) -> None:
    """Normalise state and action as ``lerobot_config`` asks, where ``stats`` allow it.

    A mode whose statistics ``stats`` lack (e.g. PI05's QUANTILES with statistics written before
    q01 / q99 were computed) falls back to MEAN_STD with a warning when a model is being built;
    when ``restoring`` a trained checkpoint, whose weights learnt that mode, it is an error.
    """
    from lerobot.configs import NormalizationMode

    mapping = dict(lerobot_config.normalization_mapping)
    for key in ("STATE", "ACTION"):
        if mapping.get(key) is None:
            continue
        mode = NormalizationMode(mapping[key])
        missing = [kind for kind in STATS_OF_MODE.get(mode.name, ())
                   if not stats.has(kind)]
        if not missing:
            continue
        if restoring:
            raise ConfigError(
                f"the checkpoint's LeRobot config normalises {key} with {mode.name} but its "
                f"normalization.json has no {' / '.join(missing)} statistics")
        LOGGER.warning("%s normalises %s with %s, but the statistics lack %s: using MEAN_STD "
                       "(recompute the statistics to keep %s)", type(lerobot_config).__name__,
                       key, mode.name, " / ".join(missing), mode.name)
        mapping[key] = NormalizationMode.MEAN_STD
    lerobot_config.normalization_mapping = mapping


def _check_dims(lerobot_config: Any, robot: RobotInterface) -> None:
    state_label = "joints"
    if robot.environment_state_names:
        state_label = f"joint + environment-state values ({len(robot.joint_names)} + " \
                      f"{len(robot.environment_state_names)})"
    state_size = len(robot.joint_names) + len(robot.environment_state_names)
    for label, size, limit in ((state_label, state_size, lerobot_config.max_state_dim),
                               ("actions", len(robot.action_names),
                                lerobot_config.max_action_dim)):
        if size > limit:
            raise ConfigError(f"the robot has {size} {label} but the model takes at most "
                              f"{limit} (max_{'action' if label == 'actions' else 'state'}_dim)")


def _from_pretrained(cls: type[LeRobotVLAPolicy], pretrained: Path, changes: dict[str, Any],
                     robot: RobotInterface, stats: NormalizationStats | None) -> Any:
    """The LeRobot policy of a ``snapflow_*`` or stock LeRobot checkpoint folder."""
    kind = cls.lerobot_policy_class.name.removeprefix("snapflow_")
    kind_on_disk = read_checkpoint_type(pretrained)
    if kind_on_disk.removeprefix("snapflow_") != kind:
        raise ConfigError(f"{pretrained} is a '{kind_on_disk}' checkpoint, not {kind}")
    if kind_on_disk.startswith("snapflow_"):
        cfg = _apply(read_lerobot_config(pretrained), changes)
        resolve_local_backbone(cfg, pretrained)
        _check_dims(cfg, robot)
        return cls.lerobot_policy_class.from_pretrained(pretrained, config=cfg)
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
        _check_dims(cfg, robot)
        lerobot_policy = cls.lerobot_policy_class(cfg)
    elif pretrained is not None and load_weights:
        pretrained = resolve_checkpoint_folder(config.pretrained_path)  # a folder or a hub id
        processor_dir = pretrained
        lerobot_policy = _from_pretrained(cls, pretrained, changes, robot, stats)
    else:
        cfg = _apply(cls.lerobot_policy_class.config_class(), changes)
        for key, value in cls.offline_fields.items():
            if key not in config.lerobot_overrides:
                setattr(cfg, key, value)
        resolve_local_backbone(cfg, None)
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
    if stats is not None:
        _keep_normalization_modes(lerobot_policy.config, stats,
                                  restoring=lerobot_config is not None)
    pre, post = lerobot_processors(lerobot_policy.config, stats, processor_dir)
    return cls(lerobot_policy, pre, post, robot, config, stats)
