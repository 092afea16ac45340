# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot-format checkpoint folders of the ``snapflow_*`` policies, loaded keeping ``phi_s``.

Each backend's LeRobot policy class (``SnapFlowSmolVLAPolicy``, ``SnapFlowPI0Policy``,
``SnapFlowPI05Policy`` in its ``modeling_<name>``) mixes in :class:`SnapFlowLoading`: its
``from_pretrained`` loads strictly and then checks, against the weights file, that ``phi_s``
was really loaded (PI0 / PI05's own loader prints and swallows key errors, and returns a random
model when the file is missing). :func:`load_stock_checkpoint` starts a SnapFlow policy from a
stock LeRobot checkpoint (a teacher: ``phi_s`` starts at zero and the outputs are the stock
model's). :func:`save_local_backbone` / :func:`resolve_local_backbone` keep the small backbone
files a folder needs to rebuild offline.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from lerobot.configs import PreTrainedConfig

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.lerobot_vla.config_migration import read_lerobot_config
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import TargetTimeDroppedError
from snapflow_ros.policies.lerobot_vla.hub_cache import (
    cached_snapshot,
    hub_offline,
    is_repo_id,
    missing_backbone_error,
    resolve_checkpoint_folder,
)
from snapflow_ros.policies.lerobot_vla.target_time import TARGET_TIME_MODULE

LEROBOT_DIR = "lerobot"
"""Sub-folder of our checkpoints holding the same policy in LeRobot's ``save_pretrained`` layout."""
WEIGHTS_FILE = "model.safetensors"
VLM_BACKBONE_DIR = "vlm_backbone"
"""Sub-folder of a saved SmolVLA checkpoint with the SmolVLM config / tokenizer / processor."""
TOKENIZER_DIR = "tokenizer"
"""Sub-folder of a saved PI0 / PI05 checkpoint with the tokenizer files."""

_TARGET_TIME_PREFIX = f"model.{TARGET_TIME_MODULE}."


def _as_loaded(keys: set[str], policy: Any) -> dict[str, str]:
    """Keys of a weights file as ``policy`` loads them -> the file's keys.

    PI0 / PI05 rename keys on load (LeRobot's ``_fix_pytorch_state_dict_keys``, then a
    ``model.`` prefix); that same function is applied here, to names only.
    """
    if not hasattr(policy, "_fix_pytorch_state_dict_keys"):
        return {k: k for k in keys}
    loaded = {}
    placeholder = torch.empty(0)
    for key in keys:
        for fixed in policy._fix_pytorch_state_dict_keys({key: placeholder}, policy.config):
            loaded[fixed if fixed.startswith("model.") else f"model.{fixed}"] = key
    return loaded


def verify_target_time_loaded(policy: Any, checkpoint: str | Path) -> None:
    """Check that ``policy`` holds exactly the ``phi_s`` weights stored in ``checkpoint``.

    ``checkpoint`` is a folder with ``model.safetensors`` or the file itself. Raises
    :class:`TargetTimeDroppedError` if the file has ``phi_s`` weights the policy lacks (a stock
    class loaded it), if a SnapFlow policy's file has none, or if the values differ.
    """
    from safetensors import safe_open

    path = Path(checkpoint)
    model_file = path / WEIGHTS_FILE if path.is_dir() else path
    if not model_file.is_file():
        raise FileNotFoundError(f"no weights file {model_file}")
    state = policy.state_dict()
    expected = {k for k in state if k.startswith(_TARGET_TIME_PREFIX)}
    with safe_open(str(model_file), framework="pt") as weights:
        by_normalized = _as_loaded(set(weights.keys()), policy)
        stored = {k for k in by_normalized if k.startswith(_TARGET_TIME_PREFIX)}
        if stored and not expected:
            raise TargetTimeDroppedError(
                f"{model_file} holds SnapFlow phi_s weights ({len(stored)} tensors) but "
                f"{type(policy).__name__} has no phi_s: loading it this way drops them; use "
                "the snapflow_* LeRobot types or snapflow_ros.policies.registry.new_policy")
        if expected and not stored:
            raise TargetTimeDroppedError(
                f"{model_file} has no phi_s weights ({_TARGET_TIME_PREFIX}*): it was not saved "
                "from a SnapFlow policy (a stock checkpoint loads as a teacher with "
                "load_stock_checkpoint)")
        if expected != stored:
            raise TargetTimeDroppedError(
                f"phi_s weights differ in name: file has {sorted(stored)}, model has "
                f"{sorted(expected)}")
        for key in sorted(expected):
            saved = weights.get_tensor(by_normalized[key])
            loaded = state[key].detach().to(device="cpu", dtype=saved.dtype)
            if not torch.equal(saved, loaded):
                raise TargetTimeDroppedError(f"phi_s weight {key} was not loaded from {model_file}")
        missing = _untied_missing(policy, state, set(by_normalized))
        if missing:
            raise TargetTimeDroppedError(
                f"{model_file} lacks {len(missing)} weights of {type(policy).__name__}, e.g. "
                f"{missing[:5]} (LeRobot's PI0 / PI05 loader only prints this)")
        _check_shapes(weights, by_normalized, state, model_file)


def _check_shapes(weights: Any, by_loaded: dict[str, str], state: dict, model_file: Path) -> None:
    """Raise if a stored tensor's shape differs from the model's (PI0 / PI05 only print it)."""
    wrong = [f"{key} {tuple(weights.get_slice(name).get_shape())} vs {tuple(state[key].shape)}"
             for key, name in by_loaded.items()
             if key in state and tuple(weights.get_slice(name).get_shape()) != tuple(
                 state[key].shape)]
    if wrong:
        raise ConfigError(f"{model_file}: shape mismatch (file vs model, e.g. another image "
                          f"size): {', '.join(wrong[:5])}")


def _untied_missing(policy: Any, state: dict, stored: set[str]) -> list[str]:
    """Model keys absent from the file, except duplicates of tied (shared-storage) weights."""
    by_storage: dict[tuple, list[str]] = {}
    for key, tensor in state.items():
        ident = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                 tuple(tensor.shape))
        by_storage.setdefault(ident, []).append(key)
    missing = []
    for keys in by_storage.values():
        if not any(k in stored for k in keys):
            missing.extend(keys)
    return sorted(missing)


class SnapFlowLoading:
    """A ``from_pretrained`` that loads strictly from a local folder and verifies ``phi_s``.

    Mixed into each ``snapflow_*`` LeRobot policy class, first among its bases.
    """

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *,
                        config: PreTrainedConfig | None = None, strict: bool = True,
                        **kwargs: Any) -> Any:
        """Load a ``snapflow_*`` checkpoint folder and check every ``phi_s`` weight arrived."""
        folder = resolve_checkpoint_folder(pretrained_name_or_path)
        if not (folder / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{folder} has no {WEIGHTS_FILE}")
        if config is None:
            config = read_lerobot_config(folder)
        if not isinstance(config, cls.config_class):
            raise TargetTimeDroppedError(
                f"{folder} is a '{config.type}' checkpoint, not '{cls.name}': load a stock "
                "checkpoint with load_stock_checkpoint")
        resolve_local_backbone(config, folder)
        policy = cls._load_with_lerobot(folder, config, strict=strict, **kwargs)
        verify_target_time_loaded(policy, folder)
        return policy

    @classmethod
    def _load_with_lerobot(cls, folder: Path, config: PreTrainedConfig, *, strict: bool,
                           **kwargs: Any) -> Any:
        """LeRobot's own loader of the stock class (SmolVLA's, or PI0 / PI05's key remapping)."""
        return super(SnapFlowLoading, cls).from_pretrained(folder, config=config, strict=strict,
                                                            **kwargs)


def resolve_local_backbone(config: PreTrainedConfig, folder: Path | None) -> None:
    """Point ``config`` at local backbone files when its own path is not a folder here.

    SmolVLA's ``vlm_model_name`` (``vlm_backbone/``), PI0 / PI05's ``tokenizer_name``
    (``tokenizer/``): the copy saved inside ``folder`` (if given), else a hub id's snapshot in
    the Hugging Face cache. With ``HF_HUB_OFFLINE`` set, one found nowhere raises
    :class:`ConfigError` naming it and how to get it (online, transformers downloads it).
    """
    for field, saved, what, option in (
            ("vlm_model_name", VLM_BACKBONE_DIR, "SmolVLA's backbone",
             "vlm_model_name (--vlm-model-name)"),
            ("tokenizer_name", TOKENIZER_DIR, "the PaliGemma tokenizer",
             "tokenizer_path (--tokenizer-path)")):
        name = getattr(config, field, None)
        if name is None or Path(name).is_dir():
            continue
        local = folder / saved if folder is not None else None
        # A saved SmolVLM copy is usable once it has its config; a tokenizer folder as it is.
        marker = local / "config.json" if field == "vlm_model_name" and local else local
        if marker is not None and marker.exists():
            setattr(config, field, str(local))
            continue
        snapshot = cached_snapshot(name) if is_repo_id(name) else None
        if snapshot is not None:
            setattr(config, field, str(snapshot))
        elif hub_offline():
            raise missing_backbone_error(what, str(name), option)


def read_checkpoint_type(folder: str | Path) -> str:
    """The ``type`` recorded in a LeRobot checkpoint's ``config.json``."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} has no config.json (not a LeRobot checkpoint)")
    kind = json.loads(config_file.read_text()).get("type")
    if not kind:
        raise ConfigError(f"{config_file} has no 'type'")
    return kind


def snapflow_backend(lerobot_type: str) -> Any:
    """Our backend class (a ``LeRobotVLAPolicy``) for a stock or ``snapflow_*`` LeRobot type.

    The registry's LeRobot policy types carry the stock LeRobot names (smolvla, pi0, pi05).
    """
    from snapflow_ros.policies.registry import lerobot_policy_types, policy_class

    stock = lerobot_type.removeprefix("snapflow_")
    if stock not in lerobot_policy_types():
        raise ConfigError(f"no SnapFlow version of LeRobot policy type '{lerobot_type}' "
                          f"(supported: {', '.join(lerobot_policy_types())})")
    return policy_class(stock)


def snapflow_config_from(config: PreTrainedConfig, **changes: Any) -> PreTrainedConfig:
    """The ``snapflow_*`` config with every field of a stock (or SnapFlow) LeRobot ``config``."""
    target = snapflow_backend(config.type).lerobot_policy_class.config_class
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    values.update(changes)
    names = {f.name for f in dataclasses.fields(target) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {target.__name__} field(s): {', '.join(unknown)}")
    return target(**values)


def load_stock_checkpoint(folder: str | Path, **changes: Any) -> Any:
    """A SnapFlow LeRobot policy from a stock LeRobot checkpoint folder (the teacher).

    ``changes`` override config fields (e.g. ``vlm_model_name``, ``tokenizer_name``, ``device``;
    the backend's ``offline_fields``, such as SmolVLA's ``load_vlm_weights=False``, are set
    unless given: the weights come from the checkpoint). ``phi_s``
    starts at zero, so the policy's outputs are the stock model's. A folder that already holds
    ``phi_s`` weights is refused (load it with ``from_pretrained`` of its ``snapflow_*`` type).
    """
    folder = resolve_checkpoint_folder(folder)
    stock = read_lerobot_config(folder)
    if stock.type.startswith("snapflow_"):
        raise ConfigError(f"{folder} is already a SnapFlow checkpoint ('{stock.type}'): load it "
                          "with its from_pretrained")
    cls = snapflow_backend(stock.type).lerobot_policy_class
    for key, value in snapflow_backend(stock.type).offline_fields.items():
        changes.setdefault(key, value)
    config = snapflow_config_from(stock, **changes)
    resolve_local_backbone(config, folder)
    model_file = folder / WEIGHTS_FILE
    if not model_file.is_file():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_FILE}")
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as weights:
        if any(TARGET_TIME_MODULE in k for k in weights.keys()):
            raise TargetTimeDroppedError(
                f"{model_file} holds phi_s weights under a stock '{stock.type}' config: a stock "
                f"LeRobot load would drop them; restore the config type 'snapflow_{stock.type}'")
    # Both LeRobot loaders (SmolVLA non-strict; PI0 / PI05 remapping keys) are used as they are;
    # the only keys a stock file may lack are phi_s's.
    policy = cls._load_with_lerobot(folder, config, strict=False)
    state = policy.state_dict()
    with safe_open(str(model_file), framework="pt") as weights:
        by_loaded = _as_loaded(set(weights.keys()), policy)
        _check_shapes(weights, by_loaded, state, model_file)
    missing = [k for k in _untied_missing(policy, state, set(by_loaded))
               if not k.startswith(_TARGET_TIME_PREFIX)]
    if missing:
        raise ConfigError(f"{model_file} lacks {len(missing)} weights of the model, e.g. "
                          f"{missing[:5]}")
    return policy


def save_local_backbone(policy: Any, folder: str | Path) -> None:
    """Copy the small backbone files a checkpoint needs to rebuild offline into ``folder``.

    SmolVLA: the SmolVLM config / tokenizer / processor files (``vlm_backbone/``); PI0 / PI05:
    the tokenizer (``tokenizer/``). No weights are copied.
    """
    import shutil

    folder = Path(folder)
    config = policy.config
    if hasattr(config, "vlm_model_name"):
        source, target = Path(config.vlm_model_name), folder / VLM_BACKBONE_DIR
    else:
        source, target = Path(getattr(config, "tokenizer_name", "")), folder / TOKENIZER_DIR
    if not source.is_dir() or source.resolve() == target.resolve():
        return
    target.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(source):
        if entry.is_file() and not entry.name.endswith((".safetensors", ".bin", ".pt", ".gguf")):
            shutil.copy2(entry.path, target / entry.name)
