# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoints, backbones and tokenizers named by Hugging Face hub id, found in the local cache.

A published config names its backbone by hub id (SmolVLA's ``vlm_model_name``
``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``, PI0 / PI05's gated
``google/paligemma-3b-pt-224`` tokenizer), and users pass ``--policy-path lerobot/pi05_base``.
These resolve to the snapshot folder a ``hf download`` left in the cache (``HF_HUB_CACHE``, else
``HF_HOME/hub``, read when called), without the network; with ``HF_HUB_OFFLINE`` unset a
checkpoint missing from the cache is downloaded as LeRobot would. What cannot be found raises
:class:`ConfigError` naming it and the command that downloads it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from snapflow_ros.config_fields import ConfigError

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def hub_cache_dir() -> Path:
    """The hub cache folder: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/...``."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache")), "huggingface")
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the network (read when called)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def is_repo_id(name: str) -> bool:
    """Whether ``name`` looks like a hub id (``owner/name``) rather than a path."""
    return bool(_REPO_ID.match(str(name))) and not Path(name).exists()


def cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of model ``repo_id`` (its ``main`` revision), or None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=str(hub_cache_dir()),
                                      local_files_only=True))
    except Exception:  # not cached (huggingface_hub raises several error types)
        return None


def download_command(repo_id: str, *, gated: bool = False, options: str = "") -> str:
    """The shell command that puts ``repo_id`` in the cache (``options``: e.g. ``--include``)."""
    login = "hf auth login (after accepting its licence on the hub), then " if gated else ""
    return f"{login}hf download {repo_id}{' ' + options if options else ''}"


def resolve_checkpoint_folder(name_or_path: str | Path) -> Path:
    """A LeRobot checkpoint folder: ``name_or_path`` itself, or a hub id's cached snapshot.

    A hub id missing from the cache is downloaded unless ``HF_HUB_OFFLINE`` is set; failing
    that, :class:`ConfigError` names it and the command that downloads it.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if not is_repo_id(name):
        raise ConfigError(f"{name}: no such checkpoint folder")
    snapshot = cached_snapshot(name)
    if snapshot is not None:
        return snapshot
    reason = f"not in the Hugging Face cache ({hub_cache_dir()})"
    if not hub_offline():
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(name, cache_dir=str(hub_cache_dir())))
        except Exception as exc:  # offline, gated or unknown id
            reason += f" and not downloadable ({type(exc).__name__})"
    raise ConfigError(f"{name}: not a folder and {reason}; download it with: "
                      f"{download_command(name)}")


def missing_backbone_error(what: str, name: str, option: str) -> ConfigError:
    """The error for a backbone / tokenizer ``name`` found nowhere, naming how to provide it."""
    gated = name.startswith("google/paligemma")
    # Only the small files are needed: the weights come with the LeRobot checkpoint.
    options = "--include '*token*'" if gated else "--exclude '*.safetensors'"
    return ConfigError(
        f"{what} '{name}' is not a folder, not saved in the checkpoint and not in the Hugging "
        f"Face cache ({hub_cache_dir()}); download it with: "
        f"{download_command(name, gated=gated, options=options)}, or pass a local copy as {option}")
