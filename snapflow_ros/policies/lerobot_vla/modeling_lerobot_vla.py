# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The SnapFlow policy over a LeRobot VLA, shared by the SmolVLA, PI0 and PI05 backends.

:class:`LeRobotVLAPolicy` wraps one ``snapflow_*`` LeRobot policy (each backend's
``modeling_<name>``) and its LeRobot pre/post-processors behind
:class:`~snapflow_ros.policies.base.FlowMatchingPolicy`:

- ``encode`` runs LeRobot's preprocessor on the raw batch (images, joint state, task text ->
  normalised state, tokens), then the VLM prefix once, and returns its KV cache as plain
  tensors; every ``velocity`` call builds a fresh cache object over those tensors, so calls can
  share one context (SmolVLA appends to its cache and crops it back in place);
- ``velocity`` is LeRobot's own ``denoise_step`` with the target time ``s`` fed to ``phi_s``;
- ``normalized_action_target`` / ``to_robot_actions`` are LeRobot's normaliser and unnormaliser.

The wrapper's state dict is the LeRobot policy's (keys ``model.*``), so one weights file serves
both our checkpoints and LeRobot's ``from_pretrained``. A backend subclass names its LeRobot
policy class and fills in the few places the models differ (:meth:`LeRobotVLAPolicy._encode_prefix`,
:meth:`LeRobotVLAPolicy._denoise`, the config fields it sets, where it reads its step count).

Threading: every public call takes the policy's lock, so one model serves one thread at a time;
calls from several threads are serialised, never interleaved. LeRobot's own ``select_action`` on
:attr:`LeRobotVLAPolicy.lerobot_policy` does not take it: do not mix the two across threads.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from snapflow_ros.config_fields import ConfigError, config_from_dict, config_to_dict
from snapflow_ros.policies.base import Context, FlowMatchingPolicy, RobotInterface
from snapflow_ros.policies.lerobot_vla.building import STATS_OF_MODE, build_lerobot_vla
from snapflow_ros.policies.lerobot_vla.configuration_lerobot_vla import LeRobotVLAConfig
from snapflow_ros.policies.lerobot_vla.lerobot_checkpoint import (
    LEROBOT_DIR,
    WEIGHTS_FILE,
    save_local_backbone,
    verify_target_time_loaded,
)
from snapflow_ros.policies.lerobot_vla.target_time import TARGET_TIME_MODULE
from snapflow_ros.policies.normalization import NormalizationStats

_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    @functools.wraps(method)
    def call(self: LeRobotVLAPolicy, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def _batch_key(batch: dict) -> tuple | None:
    """Identity of a batch and of its values (with tensor versions); None if not trackable."""
    parts: list = [id(batch)]
    values = list(batch.items()) + [(f"images.{k}", v) for k, v in
                                    (batch.get("images") or {}).items()]
    for name, value in values:
        version = None
        if isinstance(value, torch.Tensor):
            if value.is_inference():
                return None  # inference tensors have no version counter to check
            version = value._version
        parts.append((name, id(value), version))
    return tuple(parts)


class LeRobotVLAPolicy(FlowMatchingPolicy):
    """A ``snapflow_*`` LeRobot policy and its processors as a :class:`FlowMatchingPolicy`.

    Built through :func:`~snapflow_ros.policies.registry.new_policy` (:meth:`from_config`) or
    from a checkpoint (:meth:`from_policy_config`). A backend subclass sets
    :attr:`lerobot_policy_class` and implements :meth:`lerobot_config_changes`,
    :meth:`_prefix_modules`, :meth:`set_lerobot_num_steps`, :meth:`_encode_prefix` and
    :meth:`_denoise`.
    """

    lerobot_policy_class: ClassVar[type]
    """The ``snapflow_*`` LeRobot policy class this backend wraps."""
    offline_fields: ClassVar[dict[str, Any]] = {}
    """LeRobot config fields that keep construction from fetching backbone weights, set when the
    weights come from elsewhere (a checkpoint, or a random initialisation) unless
    ``lerobot_overrides`` sets them (SmolVLA: ``load_vlm_weights=False``)."""

    def __init__(self, lerobot_policy: Any, preprocessor: Any, postprocessor: Any,
                 robot: RobotInterface, config: LeRobotVLAConfig,
                 stats: NormalizationStats | None = None) -> None:
        super().__init__()
        self.model = lerobot_policy.model
        # Not a registered child: its only module is ``model``, registered above, so the state
        # dict keys are exactly LeRobot's.
        object.__setattr__(self, "lerobot_policy", lerobot_policy)
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.robot = robot
        self.config = config
        self._stats = stats
        lerobot_config = lerobot_policy.config
        self.chunk_size = int(lerobot_config.chunk_size)
        self.action_dim = int(lerobot_config.max_action_dim)
        self._lock = threading.RLock()
        # (key, preprocessed batch, the objects the key names: held so their ids stay unique)
        self._memo: tuple[tuple, dict, list] | None = None

    # -- what a backend fills in ------------------------------------------------------------------

    @classmethod
    def lerobot_config_changes(cls, config: LeRobotVLAConfig) -> dict[str, Any]:
        """The LeRobot config fields this backend sets from ``config`` (step count, image size).

        Beyond the robot's features and the fields every backend shares; ``lerobot_overrides``
        apply on top.
        """
        raise NotImplementedError

    @classmethod
    def cast_weights(cls, lerobot_policy: Any, dtype: str) -> None:
        """Cast the LeRobot policy's VLM and expert to ``dtype`` after it is built.

        Default: nothing (PI0 / PI05 cast themselves from their config's ``dtype``).
        """

    def _prefix_modules(self) -> list[nn.Module]:
        """The modules that feed the prefix (frozen in the ``snapflow`` stage)."""
        raise NotImplementedError

    def set_lerobot_num_steps(self, num_steps: int) -> None:
        """Euler steps of LeRobot's own sampler, set where the model reads it."""
        raise NotImplementedError

    def _encode_prefix(self, processed: dict) -> Context:
        """The VLM prefix of a preprocessed batch: its KV cache tensors (and the expert's state)."""
        raise NotImplementedError

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        """LeRobot's ``denoise_step`` of ``x`` ``(B, H, D)`` at times ``t`` ``(B,)``."""
        raise NotImplementedError

    def _to_model_action_space(self, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def _from_model_action_space(self, actions: torch.Tensor) -> torch.Tensor:
        return actions

    # -- construction and checkpoints -------------------------------------------------------------

    @classmethod
    def from_config(cls, config_dict: dict, robot: RobotInterface,
                    stats: NormalizationStats | None) -> LeRobotVLAPolicy:
        """A new policy from :class:`LeRobotVLAConfig` options, randomly initialised or not.

        ``pretrained_path`` names a LeRobot checkpoint folder to start from (a stock one loads
        as the teacher, ``phi_s`` at zero).
        """
        config = config_from_dict(LeRobotVLAConfig, config_dict)
        return build_lerobot_vla(cls, config, robot, stats)

    def policy_config_dict(self) -> dict:
        """Our config plus the full LeRobot config (``lerobot_config``), JSON-safe."""
        import draccus
        from lerobot.configs import PreTrainedConfig

        data = config_to_dict(self.config)
        data["lerobot_config"] = draccus.encode(self.lerobot_policy.config, PreTrainedConfig)
        return data

    @classmethod
    def from_policy_config(cls, config_dict: dict, robot: RobotInterface,
                           stats: NormalizationStats | None, *,
                           checkpoint_dir: str | Path | None = None) -> LeRobotVLAPolicy:
        """Rebuild the (untrained) architecture recorded by :meth:`policy_config_dict`.

        ``checkpoint_dir`` lets the SmolVLM / tokenizer files and processors saved inside a
        checkpoint be found when the paths recorded at training time do not exist here.
        """
        data = dict(config_dict)
        lerobot_config = data.pop("lerobot_config", None)
        config = config_from_dict(LeRobotVLAConfig, data)
        return build_lerobot_vla(cls, config, robot, stats, lerobot_config=lerobot_config,
                                 checkpoint_dir=checkpoint_dir, load_weights=False)

    def normalization_stats(self) -> NormalizationStats | None:
        """The statistics of the processors; None if they normalise with others than ours.

        None (e.g. a LeRobot checkpoint's processors without mean / std, or with QUANTILE10)
        means the normalisation lives only in the saved LeRobot processors
        (``<checkpoint>/lerobot``).
        """
        if self._stats is not None:
            return self._stats
        from lerobot.configs import NormalizationMode
        from lerobot.processor import NormalizerProcessorStep

        for step in self.preprocessor.steps:
            if isinstance(step, NormalizerProcessorStep):
                stats = step.stats or {}
                try:
                    values = {f"{prefix}_{kind}": stats[key][kind]
                              for prefix, key in (("state", "observation.state"),
                                                  ("action", "action"))
                              for kind in ("mean", "std", "min", "max", "q01", "q99")
                              if kind in stats.get(key, {})}
                    found = NormalizationStats(**_split_environment_state(
                        values, len(self.robot.joint_names),
                        len(self.robot.environment_state_names)))
                except (TypeError, ConfigError):
                    return None
                mapping = self.lerobot_policy.config.normalization_mapping
                modes = [NormalizationMode(mapping.get(k, "IDENTITY")) for k in ("STATE", "ACTION")]
                if all(mode != NormalizationMode.IDENTITY and all(
                        found.has(kind) for kind in STATS_OF_MODE[mode.name]) for mode in modes):
                    return found
                return None
        return None

    def save_extra(self, directory: str | Path) -> None:
        """Write ``<directory>/lerobot``: this policy in LeRobot's ``save_pretrained`` layout.

        Self-contained (no link out of it): the weights are copied from our
        ``model.safetensors`` (same keys), the SmolVLM files (SmolVLA) or the tokenizer
        (PI0 / PI05) are copied in, so the folder rebuilds offline with ``from_pretrained``.
        Once ``phi_s`` is trained (its zero-initialised output layer moved: the ``snapflow``
        stage), LeRobot's own ``select_action`` there runs SnapFlow's one-step jump (1 step,
        ``jump`` sampling: the actions of our 1-NFE sampler); a teacher keeps its ``num_steps``
        Euler steps.
        """
        target = Path(directory) / LEROBOT_DIR
        target.mkdir(parents=True, exist_ok=True)
        ours = Path(directory) / WEIGHTS_FILE
        with self._lock, self._exported_lerobot_config():
            if ours.is_file():
                self.lerobot_policy.config._save_pretrained(target)
                (target / WEIGHTS_FILE).unlink(missing_ok=True)
                shutil.copyfile(ours, target / WEIGHTS_FILE)
            else:
                self.lerobot_policy.save_pretrained(target)
        self.preprocessor.save_pretrained(target)
        self.postprocessor.save_pretrained(target)
        save_local_backbone(self.lerobot_policy, target)

    @contextlib.contextmanager
    def _exported_lerobot_config(self) -> Iterator[None]:
        """Within the block, the LeRobot config is the one to export (1 jump step once trained)."""
        live = self.lerobot_policy.config
        # phi_s's output layer starts at zero and stays there in the teacher stage.
        out = getattr(self.model, TARGET_TIME_MODULE).out
        trained = any(bool(p.detach().ne(0).any()) for p in out.parameters())
        if not trained:
            yield
            return
        exported = copy.deepcopy(live)
        self.lerobot_policy.config = exported
        try:
            self.set_lerobot_num_steps(1)
            exported.lerobot_sampling = "jump"
            yield
        finally:
            self.lerobot_policy.config = live

    def load_extra(self, directory: str | Path) -> None:
        """After our loader filled the weights: check ``phi_s`` came from ``directory``'s file."""
        verify_target_time_loaded(self.lerobot_policy, directory)

    # -- parameters ---------------------------------------------------------------------------

    def prefix_parameters(self) -> list[nn.Parameter]:
        """The VLM (vision encoder, language model) and whatever else feeds the prefix."""
        seen: set[int] = set()
        params = []
        for module in self._prefix_modules():
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    def target_time_parameters(self) -> list[nn.Parameter]:
        """``phi_s``'s parameters."""
        return list(getattr(self.model, TARGET_TIME_MODULE).parameters())

    # -- batches --------------------------------------------------------------------------------

    def _lerobot_batch(self, batch: dict, *, with_action: bool) -> dict:
        """Our batch layout -> LeRobot's raw observation keys (images float in [0, 1])."""
        if "state" not in batch:
            raise KeyError("batch has no 'state'")
        state = torch.as_tensor(batch["state"]).float()
        if state.ndim != 2 or state.shape[1] != len(self.robot.joint_names):
            raise ValueError(f"state must have shape (B, {len(self.robot.joint_names)}), "
                             f"got {tuple(state.shape)}")
        images = batch.get("images") or {}
        missing = [k for k in self.robot.camera_keys if k not in images]
        if missing:
            raise KeyError(f"batch lacks camera(s) {missing} (has {sorted(images)})")
        if self.robot.environment_state_names:
            size = len(self.robot.environment_state_names)
            if "environment_state" not in batch:
                raise KeyError(f"batch has no 'environment_state' (the policy reads {size} "
                               f"values: {list(self.robot.environment_state_names)})")
            environment = torch.as_tensor(batch["environment_state"]).float()
            if environment.shape != (state.shape[0], size):
                raise ValueError(f"environment_state must have shape ({state.shape[0]}, "
                                 f"{size}), got {tuple(environment.shape)}")
            state = torch.cat([state, environment.to(state.device)], dim=1)
        raw: dict[str, Any] = {"observation.state": state}
        for key in self.robot.camera_keys:
            image = torch.as_tensor(images[key])
            image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
            raw[f"observation.images.{key}"] = image
        task = batch.get("task")
        rows = state.shape[0]
        if task is None:
            task = [self.config.default_task] * rows
        elif isinstance(task, str):
            task = [task] * rows
        if len(task) != rows:
            raise ValueError(f"batch has {len(task)} task strings for {rows} rows")
        raw["task"] = [str(t) for t in task]
        if with_action:
            action = torch.as_tensor(batch["action"]).float()
            expected = (self.chunk_size, len(self.robot.action_names))
            if action.ndim != 3 or tuple(action.shape[1:]) != expected:
                raise ValueError(f"action must have shape (B, {expected[0]}, {expected[1]}), "
                                 f"got {tuple(action.shape)}")
            raw["action"] = action
        return raw

    @_locked
    def preprocess(self, batch: dict) -> dict:
        """LeRobot's preprocessor on our batch layout, tensors on the model's device.

        For a training batch (one with ``action``) the result is kept while the same batch
        object with the same, unmodified values comes again, so ``encode`` and
        ``normalized_action_target`` of one step preprocess it once.
        """
        key = _batch_key(batch) if "action" in batch else None
        if key is not None and self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        raw = self._lerobot_batch(batch, with_action="action" in batch)
        processed = self.preprocessor(raw)
        device = self.device
        processed = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                     for k, v in processed.items()}
        if key is None:
            self._memo = None
        else:
            held = [batch, *batch.values(), *(batch.get("images") or {}).values()]
            self._memo = (key, processed, held)
        return processed

    @_locked
    def encode_preprocessed(self, processed: dict) -> Context:
        """The VLM prefix of an already preprocessed batch -> its KV cache as tensors."""
        return self._encode_prefix(processed)

    # -- FlowMatchingPolicy ---------------------------------------------------------------------

    @_locked
    def encode(self, batch: dict) -> Context:
        """LeRobot's preprocessor, then the VLM prefix once -> its KV cache as tensors."""
        return self._encode_prefix(self.preprocess(batch))

    @_locked
    def velocity(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor,
                 context: Context) -> torch.Tensor:
        """LeRobot's ``denoise_step`` at ``t`` with target time ``s``: ``(B, H, D)`` float32."""
        rows = x.shape[0]
        s = torch.as_tensor(s, device=x.device, dtype=torch.float32).expand(rows)
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32).expand(rows)
        with self.lerobot_policy.target_time.target_time(s):
            return self._denoise(x.float(), t, context)

    @_locked
    def normalized_action_target(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """LeRobot-normalised chunk padded to ``(B, H, D)`` and its mask (0 on padding)."""
        from lerobot.policies.common.vla_utils import pad_vector

        if "action" not in batch:
            raise KeyError("batch has no 'action'")
        actions = self.preprocess(batch)["action"].float()
        actions = self._to_model_action_space(actions)
        num_actions = actions.shape[-1]
        x0 = pad_vector(actions, self.action_dim)
        is_pad = batch.get("action_is_pad")
        steps = (torch.ones(x0.shape[:2], dtype=torch.bool, device=x0.device) if is_pad is None
                 else ~torch.as_tensor(is_pad, device=x0.device).bool())
        dims = torch.arange(self.action_dim, device=x0.device) < num_actions
        mask = (steps[:, :, None] & dims[None, None, :]).to(x0.dtype)
        return x0, mask

    @_locked
    def to_robot_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, H, D)`` -> robot units ``(B, H, A)`` through LeRobot's postprocessor."""
        actions = x[..., :len(self.robot.action_names)].float()
        actions = self._from_model_action_space(actions)
        return self.postprocessor(actions).to(x.device)


def _split_environment_state(values: dict, joints: int, environment: int) -> dict:
    """Split LeRobot's one state vector's statistics into the joints' and the environment's."""
    if not environment:
        return values
    split = {}
    for name, value in values.items():
        if name.startswith("state_"):
            array = torch.as_tensor(value).reshape(-1)
            split[name] = array[:joints].tolist()
            split["environment_" + name] = array[joints:joints + environment].tolist()
        else:
            split[name] = value
    return split
