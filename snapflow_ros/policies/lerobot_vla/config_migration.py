# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot ``config.json`` files written by older LeRobot releases, read by the installed one.

Published checkpoints (e.g. the first ``lerobot/pi0`` port) carry fields the installed LeRobot's
config classes no longer have, and draccus refuses the whole file. :func:`migrate_lerobot_config`
maps each known removed field onto its successor (PI0's ``num_steps`` is now
``num_inference_steps``, ``resize_imgs_with_padding`` is ``image_resolution``), drops the ones
whose only value is now built in (``use_cache``, ``attention_implementation``, ...), and refuses,
naming the field and why, a value the installed LeRobot cannot reproduce or a field it does not
know. A field the target class still has is never touched (SmolVLA keeps ``num_steps``).
:func:`read_lerobot_config` reads a checkpoint folder's config that way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snapflow_ros.config_fields import ConfigError

LOGGER = logging.getLogger(__name__)

_RENAMED = {
    "num_steps": ("num_inference_steps", int),
    "resize_imgs_with_padding": ("image_resolution", lambda size: [int(v) for v in size]),
}
"""Removed field -> (its successor, value conversion): the same setting under a new name."""


def _always(_: Any) -> bool:
    return True


_DROPPED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "use_cache": (_always, "the model always uses its KV cache now"),
    "attention_implementation": (_always, "the model picks its attention kernel itself now"),
    "train_state_proj": (_always, "the state projection trains with the action expert now"),
    "proj_width": (lambda v: int(v) == 1024,
                   "the projection width now follows action_expert_variant (gemma_300m: 1024)"),
    "adapt_to_pi_aloha": (lambda v: not v, "the Aloha-to-pi joint space conversion was removed"),
    "use_delta_joint_actions_aloha": (
        lambda v: not v, "it was never implemented (use_relative_actions replaces it)"),
}
"""Removed field -> (values it may hold and be dropped, why it went): other values refuse."""


def migrate_lerobot_config(data: dict, config_class: type, *, source: str = "config") -> dict:
    """``data`` (a LeRobot config mapping, without ``type``) with removed fields migrated.

    Raises :class:`ConfigError` naming the field and why when it cannot be migrated, or when it
    is unknown to ``config_class`` (written by another LeRobot version).
    """
    import dataclasses

    import lerobot

    names = {f.name for f in dataclasses.fields(config_class) if f.init}
    version = getattr(lerobot, "__version__", "?")
    migrated = dict(data)
    for key in sorted(set(migrated) - names):
        value = migrated.pop(key)
        if key in _RENAMED and _RENAMED[key][0] in names:
            new_key, convert = _RENAMED[key]
            new_value = convert(value)
            if new_key in migrated and migrated[new_key] != new_value:
                raise ConfigError(
                    f"{source}: field '{key}' ({value!r}) was renamed '{new_key}' in LeRobot "
                    f"{version}, and the file also sets '{new_key}' to {migrated[new_key]!r}: "
                    "remove one")
            migrated[new_key] = new_value
            LOGGER.info("%s: LeRobot field '%s' read as '%s' (renamed)", source, key, new_key)
        elif key in _DROPPED:
            harmless, why = _DROPPED[key]
            if not harmless(value):
                raise ConfigError(
                    f"{source}: field '{key}' = {value!r} is not supported by LeRobot "
                    f"{version}'s {config_class.__name__} ({why}); a checkpoint that needs it "
                    "runs only with the LeRobot release that wrote it")
            LOGGER.info("%s: LeRobot field '%s' dropped (%s)", source, key, why)
        else:
            raise ConfigError(
                f"{source}: field '{key}' is not a field of LeRobot {version}'s "
                f"{config_class.__name__} and no migration for it is known (written by another "
                "LeRobot release?); remove it from config.json if the model does not need it")
    return migrated


def read_lerobot_config(folder: str | Path) -> Any:
    """The LeRobot config of checkpoint ``folder`` (``config.json``), older fields migrated.

    Same as LeRobot's ``PreTrainedConfig.from_pretrained`` on a local folder otherwise.
    """
    import draccus
    from lerobot.configs import PreTrainedConfig

    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} has no config.json (not a LeRobot checkpoint)")
    try:
        data = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_file} is not valid JSON: {exc}") from exc
    kind = data.pop("type", None) if isinstance(data, dict) else None
    if not kind:
        raise ConfigError(f"{config_file} has no 'type'")
    try:
        config_class = PreTrainedConfig.get_choice_class(kind)
    except Exception as exc:  # draccus raises its own error types
        raise ConfigError(f"{config_file}: LeRobot policy type '{kind}' is not registered "
                          f"(known: {', '.join(PreTrainedConfig.get_known_choices())})") from exc
    migrated = migrate_lerobot_config(data, config_class, source=str(config_file))
    return draccus.decode(config_class, migrated)
