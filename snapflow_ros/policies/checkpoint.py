# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Self-contained, atomically written policy checkpoints.

A checkpoint directory holds everything needed to rebuild the policy on a robot::

    model.safetensors    full state dict (phi_s and the normalisation buffers included)
    config.json          policy_type, the policy config, the RobotInterface, chunk size, action dim
    normalization.json   NormalizationStats (null for a policy without them)
    info.json            stage, step, training command line, creation time, versions
    train_state.pt       optional: optimiser, LR schedule, step and RNG states, for resuming

A training run directory keeps its checkpoints as ``checkpoints/step_<step>`` and a ``latest``
file naming the newest one. Every checkpoint is written into a hidden temporary directory next
to its target, fsynced and renamed into place; ``latest`` is replaced atomically only after that.
A process killed at any moment therefore leaves the previous ``latest`` intact, and readers fall
back to the newest complete checkpoint if ``latest`` points at nothing usable.

What a policy contributes goes through the hooks declared on
:class:`~snapflow_ros.policies.base.FlowMatchingPolicy`: ``policy_config_dict`` and
``normalization_stats`` when saving, ``from_policy_config`` when loading (found through
:mod:`snapflow_ros.policies.registry`), and ``save_extra`` / ``load_extra`` for files of its own
(e.g. a LeRobot-format copy), run inside the atomic write / after the weights load.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from snapflow_ros.config_fields import ConfigError, config_from_dict, config_to_dict
from snapflow_ros.policies.base import FlowMatchingPolicy, RobotInterface
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.policies.registry import policy_class
from snapflow_ros.training.config import TRAINING_STAGES

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
NORMALIZATION_FILE = "normalization.json"
INFO_FILE = "info.json"
TRAIN_STATE_FILE = "train_state.pt"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
FORMAT_VERSION = 1

_REQUIRED_FILES = (WEIGHTS_FILE, CONFIG_FILE, INFO_FILE)
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(ConfigError):
    """A checkpoint is missing, incomplete, corrupt or of an unknown kind."""


# -- low-level durable writes ---------------------------------------------------------------------

def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _state_dict_for_safetensors(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors; tied tensors are cloned (safetensors rejects shared storage)."""
    tensors: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()
    for key, value in policy.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen_storage:
            tensor = tensor.clone()
        seen_storage.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    return tensors


def _package_version() -> str:
    from snapflow_ros import __version__

    return __version__


# -- writing --------------------------------------------------------------------------------------

def _write_checkpoint_files(policy: FlowMatchingPolicy, directory: Path, *, stage: str, step: int,
                            command: str, train_state: dict | None) -> None:
    weights = directory / WEIGHTS_FILE
    save_file(_state_dict_for_safetensors(policy), str(weights), metadata={"format": "pt"})
    _fsync_file(weights)
    _write_json(directory / CONFIG_FILE, {
        "format_version": FORMAT_VERSION,
        "policy_type": policy.policy_type,
        "policy_config": policy.policy_config_dict(),
        "robot": config_to_dict(policy.robot),
        "chunk_size": int(policy.chunk_size),
        "action_dim": int(policy.action_dim),
    })
    stats = policy.normalization_stats()
    _write_json(directory / NORMALIZATION_FILE, stats.to_dict() if stats is not None else None)
    if train_state is not None:
        train_state_path = directory / TRAIN_STATE_FILE
        torch.save(train_state, train_state_path)
        _fsync_file(train_state_path)
    policy.save_extra(directory)
    # info.json last: it records the final size of the weights for a truncation check on load.
    _write_json(directory / INFO_FILE, {
        "stage": stage,
        "step": int(step),
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package_version": _package_version(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "weights_bytes": weights.stat().st_size,
    })


def export_checkpoint(policy: FlowMatchingPolicy, path: str | Path, *, stage: str, step: int,
                      command: str = "", train_state: dict | None = None) -> Path:
    """Write one self-contained checkpoint directory at ``path`` atomically (replacing it)."""
    if stage not in TRAINING_STAGES:
        raise ConfigError(f"stage={stage!r}: must be one of {', '.join(TRAINING_STAGES)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        _write_checkpoint_files(policy, tmp, stage=stage, step=step, command=command,
                                train_state=train_state)
        _fsync_dir(tmp)
        if target.exists():
            # Two renames, not one: rename() cannot replace a non-empty directory. A crash in
            # between leaves no target, and readers fall back to the newest complete checkpoint.
            old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _step_dirs(checkpoints: Path) -> list[tuple[int, Path]]:
    if not checkpoints.is_dir():
        return []
    found = []
    for entry in checkpoints.iterdir():
        match = _STEP_DIR.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _is_complete(directory: Path) -> bool:
    return directory.is_dir() and all((directory / name).is_file() for name in _REQUIRED_FILES)


def save_checkpoint(policy: FlowMatchingPolicy, directory: str | Path, *, stage: str, step: int,
                    command: str = "", train_state: dict | None = None,
                    keep: int | None = None) -> Path:
    """Save into run dir ``directory`` as ``checkpoints/step_<step>``, then point ``latest`` at it.

    ``keep`` keeps only the newest ``keep`` checkpoints (``None``: all). Returns the checkpoint
    directory. A crash at any point leaves the previous ``latest`` checkpoint loadable.
    """
    if keep is not None and keep < 1:
        raise ConfigError(f"keep={keep!r}: must be >= 1 or None")
    run_dir = Path(directory)
    checkpoints = run_dir / CHECKPOINTS_DIR
    checkpoints.mkdir(parents=True, exist_ok=True)
    for pattern in (".tmp-*", ".old-*"):  # left behind by a save that was killed
        for leftover in checkpoints.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)
    target = export_checkpoint(policy, checkpoints / f"step_{step:08d}", stage=stage, step=step,
                               command=command, train_state=train_state)
    _write_text_atomically(run_dir / LATEST_FILE, f"{CHECKPOINTS_DIR}/{target.name}\n")
    if keep is not None:
        for _, old in _step_dirs(checkpoints)[:-keep]:
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
    return target


# -- reading --------------------------------------------------------------------------------------

def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` names in ``run_dir`` or, if unusable, the newest complete one."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST_FILE
    if pointer.is_file():
        named = run_dir / pointer.read_text(encoding="utf-8").strip()
        if named.name and _is_complete(named):
            return named
    for _, candidate in reversed(_step_dirs(run_dir / CHECKPOINTS_DIR)):
        if _is_complete(candidate):
            return candidate
    return None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory resolved to its latest checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint path does not exist: {path}")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint path is not a directory: {path}")
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / LATEST_FILE).is_file() or (path / CHECKPOINTS_DIR).is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"run directory {path} has no complete checkpoint")
        return found
    raise CheckpointError(
        f"{path} is neither a checkpoint directory (no {CONFIG_FILE}) nor a training run "
        f"directory (no {LATEST_FILE} / {CHECKPOINTS_DIR}/)")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON (corrupt checkpoint?): {exc}") from exc


def _read_config(checkpoint: Path) -> dict:
    config = _read_json(checkpoint / CONFIG_FILE)
    if not isinstance(config, dict):
        raise CheckpointError(f"{checkpoint / CONFIG_FILE}: expected a JSON object")
    missing = [k for k in ("policy_type", "policy_config", "robot") if k not in config]
    if missing:
        raise CheckpointError(f"{checkpoint / CONFIG_FILE}: missing {', '.join(missing)}")
    version = config.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{checkpoint / CONFIG_FILE}: format_version {version} is newer than this package "
            f"reads ({FORMAT_VERSION}); upgrade snapflow_ros")
    return config


def read_checkpoint_info(path: str | Path) -> dict:
    """Config, info and normalisation of a checkpoint (or a run's latest) without the weights.

    Returns ``{"checkpoint_dir": str, "config": {...}, "info": {...}, "normalization": ...}``.
    """
    checkpoint = resolve_checkpoint(path)
    normalization_path = checkpoint / NORMALIZATION_FILE
    return {
        "checkpoint_dir": str(checkpoint),
        "config": _read_config(checkpoint),
        "info": _read_json(checkpoint / INFO_FILE),
        "normalization": _read_json(normalization_path) if normalization_path.exists() else None,
    }


def checkpoint_robot(path: str | Path) -> RobotInterface:
    """The :class:`RobotInterface` a checkpoint was trained for."""
    checkpoint = resolve_checkpoint(path)
    robot = _read_config(checkpoint)["robot"]
    try:
        return config_from_dict(RobotInterface, robot)
    except ConfigError as exc:
        raise CheckpointError(f"{checkpoint / CONFIG_FILE}: bad robot interface: {exc}") from exc


def load_weights(policy: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load ``model.safetensors`` of ``checkpoint`` into ``policy``; every key must match."""
    path = Path(checkpoint) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint weights missing: {path}")
    info_path = Path(checkpoint) / INFO_FILE
    if info_path.is_file():
        expected_bytes = _read_json(info_path).get("weights_bytes")
        actual_bytes = path.stat().st_size
        if expected_bytes is not None and expected_bytes != actual_bytes:
            raise CheckpointError(
                f"{path}: {actual_bytes} bytes but {expected_bytes} were written "
                f"(truncated or replaced weights file)")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: cannot read weights (truncated or corrupt?): {exc}") from exc
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    problems = []
    if missing:
        hint = (" (a checkpoint without SnapFlow's phi_s target-time embedding?)"
                if any("target_time_embedding" in k for k in missing) else "")
        problems.append(f"missing {len(missing)} key(s){hint}: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected)}")
    wrong_shape = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}"
                   for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if wrong_shape:
        problems.append(f"shape mismatch (file vs model): {', '.join(wrong_shape)}")
    if problems:
        raise CheckpointError(f"{path} does not fit {type(policy).__name__}: "
                              + "; ".join(problems))
    policy.load_state_dict(tensors, strict=True)


def load_train_state(path: str | Path) -> dict:
    """The ``train_state.pt`` of a checkpoint (or a run's latest), on the CPU."""
    checkpoint = resolve_checkpoint(path)
    state_path = checkpoint / TRAIN_STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"{checkpoint} has no {TRAIN_STATE_FILE}: it cannot be resumed")
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a damaged pickle
        raise CheckpointError(f"{state_path}: cannot read training state: {exc}") from exc


def load_policy(path: str | Path, *, device: str | torch.device = "cpu",
                expected_robot: RobotInterface | None = None,
                policy_config: dict | None = None) -> FlowMatchingPolicy:
    """Rebuild a policy from a checkpoint dir (or a run dir's latest), in eval mode on ``device``.

    With ``expected_robot``, a checkpoint trained for other joints or cameras raises
    :class:`~snapflow_ros.policies.base.CheckpointMismatchError` naming the difference.
    ``policy_config`` replaces the recorded policy config (e.g. with training overrides
    applied); the weights must still fit the architecture it gives.
    """
    checkpoint = resolve_checkpoint(path)
    config = _read_config(checkpoint)
    if policy_config is not None:
        config = dict(config, policy_config=policy_config)
    robot = checkpoint_robot(checkpoint)
    if expected_robot is not None:
        robot.check_matches(expected_robot, what=f"checkpoint {checkpoint}")
    stats_data = _read_json(checkpoint / NORMALIZATION_FILE)
    try:
        stats = NormalizationStats.from_dict(stats_data) if stats_data is not None else None
    except ConfigError as exc:
        raise CheckpointError(f"{checkpoint / NORMALIZATION_FILE}: {exc}") from exc
    try:
        policy = policy_class(config["policy_type"]).from_policy_config(
            config["policy_config"], robot, stats, checkpoint_dir=checkpoint)
    except (ConfigError, NotImplementedError) as exc:
        raise CheckpointError(f"{checkpoint / CONFIG_FILE}: {exc}") from exc
    load_weights(policy, checkpoint)
    policy.load_extra(checkpoint)
    return policy.to(device).eval()
