# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Assemble a :class:`~snapflow_ros.policies.lerobot_vla.common.LeRobotVLAPolicy` for a robot.

Three starting points: a stock LeRobot checkpoint folder (the teacher), a ``snapflow_*`` LeRobot
checkpoint folder, or nothing (random initialisation, e.g. at the real dimensions for latency
runs). In every case the LeRobot config gets the robot's features (cameras, state and action
sizes) and our options (dtype, image size, chunk size, step count), and the processors are
LeRobot's, built from our normalisation statistics or loaded from the checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.lerobot_vla.common import (
    LEROBOT_DIR,
    LeRobotVLAConfig,
    LeRobotVLAPolicy,
    lerobot_dataset_stats,
)
from snapflow_ros.policies.lerobot_vla.configuration_snapflow import SNAPFLOW_CONFIGS
from snapflow_ros.policies.lerobot_vla.modeling_snapflow import (
    SNAPFLOW_POLICIES,
    TOKENIZER_DIR,
    VLM_BACKBONE_DIR,
    load_stock_checkpoint,
    read_checkpoint_type,
)
from snapflow_ros.policies.lerobot_vla.target_time import checkpoint_module_calls
from snapflow_ros.policies.normalization import NormalizationStats


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


def _config_changes(kind: str, config: LeRobotVLAConfig,
                    robot: RobotInterface) -> dict[str, Any]:
    """LeRobot config fields our options and the robot decide."""
    changes: dict[str, Any] = dict(robot_features(robot))
    changes.update(device=config.device, target_time_hidden_dim=config.target_time_hidden_dim,
                   lerobot_sampling=config.lerobot_sampling)
    if config.chunk_size:
        changes.update(chunk_size=config.chunk_size, n_action_steps=config.chunk_size)
    if kind == "smolvla":
        changes.update(num_steps=config.num_steps, use_cache=True)
        if config.image_size:
            changes["resize_imgs_with_padding"] = (config.image_size, config.image_size)
        if config.vlm_model_name:
            changes["vlm_model_name"] = config.vlm_model_name
    else:
        # Our gradient checkpointing replaces LeRobot's: its per-layer one drops the KV cache
        # in the expert-only calls velocity() makes.
        changes.update(num_inference_steps=config.num_steps, dtype=config.dtype,
                       gradient_checkpointing=False)
        if config.image_size:
            changes["image_resolution"] = (config.image_size, config.image_size)
        if config.tokenizer_path:
            changes["tokenizer_name"] = config.tokenizer_path
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


def _decode_lerobot_config(data: dict) -> Any:
    import draccus

    data = dict(data)
    kind = data.pop("type", None)
    stock = (kind or "").removeprefix("snapflow_")
    if stock not in SNAPFLOW_CONFIGS:
        raise ConfigError(f"lerobot_config has unsupported type {kind!r}")
    return draccus.decode(SNAPFLOW_CONFIGS[stock], data)


def _use_mean_std(lerobot_config: Any) -> None:
    """Normalise state and action with mean / std: the statistics our data pipeline computes."""
    from lerobot.configs import NormalizationMode

    mapping = dict(lerobot_config.normalization_mapping)
    for key in ("STATE", "ACTION"):
        if mapping.get(key) not in (NormalizationMode.MEAN_STD, NormalizationMode.IDENTITY):
            mapping[key] = NormalizationMode.MEAN_STD
    lerobot_config.normalization_mapping = mapping


def _saved_backbone(config: Any, folder: Path | None) -> None:
    """Use the backbone files saved with a checkpoint when the recorded paths are gone."""
    if folder is None:
        return
    if hasattr(config, "vlm_model_name") and not Path(config.vlm_model_name).is_dir():
        if (folder / VLM_BACKBONE_DIR / "config.json").is_file():
            config.vlm_model_name = str(folder / VLM_BACKBONE_DIR)
    name = getattr(config, "tokenizer_name", None)
    if name is not None and not Path(name).is_dir() and (folder / TOKENIZER_DIR).is_dir():
        config.tokenizer_name = str(folder / TOKENIZER_DIR)


def _check_dims(lerobot_config: Any, robot: RobotInterface) -> None:
    for label, size, limit in (("joints", len(robot.joint_names), lerobot_config.max_state_dim),
                               ("actions", len(robot.action_names),
                                lerobot_config.max_action_dim)):
        if size > limit:
            raise ConfigError(f"the robot has {size} {label} but the model takes at most "
                              f"{limit} (max_{'state' if label == 'joints' else 'action'}_dim)")


def _processors(lerobot_config: Any, stats: NormalizationStats | None,
                processor_dir: Path | None) -> tuple[Any, Any]:
    from lerobot.policies.factory import make_pre_post_processors

    from snapflow_ros.policies.lerobot_vla.processor_snapflow import load_processors

    if stats is None and processor_dir is not None and (
            processor_dir / "policy_preprocessor.json").is_file():
        return load_processors(processor_dir, lerobot_config, device=lerobot_config.device)
    return make_pre_post_processors(lerobot_config,
                                    dataset_stats=lerobot_dataset_stats(stats))


def build_policy(cls: type[LeRobotVLAPolicy], config: LeRobotVLAConfig, robot: RobotInterface,
                 stats: NormalizationStats | None, *, lerobot_config: dict | None = None,
                 checkpoint_dir: str | Path | None = None,
                 load_weights: bool = True) -> LeRobotVLAPolicy:
    """See :meth:`LeRobotVLAPolicy.build`."""
    kind = cls.lerobot_type
    policy_cls = SNAPFLOW_POLICIES[kind]
    saved = Path(checkpoint_dir) / LEROBOT_DIR if checkpoint_dir is not None else None
    changes = _config_changes(kind, config, robot)
    pretrained = Path(config.pretrained_path) if config.pretrained_path else None
    processor_dir = saved
    if lerobot_config is not None:
        # Restoring our checkpoint: the recorded architecture, weights loaded by the caller.
        cfg = _decode_lerobot_config(lerobot_config)
        restore = {k: v for k, v in changes.items()
                   if k in ("device", "vlm_model_name", "tokenizer_name")}
        _apply(cfg, {**robot_features(robot), **restore})
        _saved_backbone(cfg, saved)
        if stats is not None:
            _use_mean_std(cfg)
        _check_dims(cfg, robot)
        lerobot_policy = policy_cls(cfg)
    elif pretrained is not None and load_weights:
        kind_on_disk = read_checkpoint_type(pretrained)
        if kind_on_disk.removeprefix("snapflow_") != kind:
            raise ConfigError(f"{pretrained} is a '{kind_on_disk}' checkpoint, not {kind}")
        processor_dir = pretrained
        if kind_on_disk.startswith("snapflow_"):
            from lerobot.configs import PreTrainedConfig

            cfg = _apply(PreTrainedConfig.from_pretrained(pretrained), changes)
            _saved_backbone(cfg, pretrained)
            if stats is not None:
                _use_mean_std(cfg)
            _check_dims(cfg, robot)
            lerobot_policy = policy_cls.from_pretrained(pretrained, config=cfg)
        else:
            if stats is not None:
                from lerobot.configs import PreTrainedConfig

                probe = PreTrainedConfig.from_pretrained(pretrained)
                _use_mean_std(probe)
                changes["normalization_mapping"] = probe.normalization_mapping
            lerobot_policy = load_stock_checkpoint(pretrained, **changes)
            _check_dims(lerobot_policy.config, robot)
    else:
        cfg = _apply(SNAPFLOW_CONFIGS[kind](), changes)
        if kind == "smolvla" and "load_vlm_weights" not in config.lerobot_overrides:
            cfg.load_vlm_weights = False
        _use_mean_std(cfg)
        _check_dims(cfg, robot)
        lerobot_policy = policy_cls(cfg)
    lerobot_policy.reset()
    _set_dtype(kind, lerobot_policy, config.dtype)
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
    pre, post = _processors(lerobot_policy.config, stats, processor_dir)
    return cls(lerobot_policy, pre, post, robot, config, stats)


def _set_dtype(kind: str, lerobot_policy: Any, dtype: str) -> None:
    """SmolVLA: cast the VLM and expert (PI0 / PI05 cast themselves from ``config.dtype``)."""
    if kind == "smolvla" and dtype == "bfloat16":
        lerobot_policy.model.vlm_with_expert.to(torch.bfloat16)
