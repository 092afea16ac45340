# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the three LeRobot VLA backends share: the config, the processors and the checkpoints.

:class:`LeRobotVLAPolicy` wraps one ``snapflow_*`` LeRobot policy (see ``modeling_snapflow``)
and its LeRobot pre/post-processors behind :class:`~snapflow_ros.policies.base.FlowMatchingPolicy`:

- ``encode`` runs LeRobot's preprocessor on the raw batch (images, joint state, task text ->
  normalised state, tokens), then the VLM prefix once, and returns its KV cache as plain
  tensors; every ``velocity`` call builds a fresh cache object over those tensors, so calls can
  share one context (SmolVLA appends to its cache and crops it back in place);
- ``velocity`` is LeRobot's own ``denoise_step`` with the target time ``s`` fed to ``phi_s``;
- ``normalized_action_target`` / ``to_robot_actions`` are LeRobot's normaliser and unnormaliser.

The wrapper's state dict is the LeRobot policy's (keys ``model.*``), so one weights file serves
both our checkpoints and LeRobot's ``from_pretrained``.

Threading: every public call takes the policy's lock, so one model serves one thread at a time;
calls from several threads are serialised, never interleaved. LeRobot's own ``select_action`` on
:attr:`LeRobotVLAPolicy.lerobot_policy` does not take it: do not mix the two across threads.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from snapflow_ros.config_fields import ConfigError, check_config, config_from_dict, param
from snapflow_ros.policies.base import Context, FlowMatchingPolicy, RobotInterface
from snapflow_ros.policies.normalization import NormalizationStats

LEROBOT_DIR = "lerobot"
"""Sub-folder of our checkpoints holding the same policy in LeRobot's ``save_pretrained`` layout."""

DTYPES = ("float32", "bfloat16")

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class LeRobotVLAConfig:
    """How to build a LeRobot VLA (SmolVLA / PI0 / PI05) as a SnapFlow policy."""

    pretrained_path: str = param(
        "", "Local LeRobot checkpoint folder to start from: a stock one (smolvla / pi0 / pi05, "
        "e.g. a copy of lerobot/smolvla_base) loads as the teacher, a snapflow_* one as it is. "
        "Empty: random initialisation.")
    vlm_model_name: str = param(
        "", "SmolVLA: local SmolVLM folder (config.json, tokenizer, processor; no weights "
        "needed). Empty: the checkpoint's own.")
    tokenizer_path: str = param(
        "", "PI0 / PI05: local PaliGemma tokenizer folder (the hub one is gated). Empty: the "
        "checkpoint's own.")
    device: str = param("cpu", "Device the LeRobot policy and its preprocessor start on.")
    dtype: str = param("float32", "Weights of the VLM and expert: float32 or bfloat16 (the "
                       "projections and phi_s stay float32).", choices=DTYPES)
    gradient_checkpointing: bool = param(
        False, "Recompute the MLP blocks of every transformer layer in backward (the attention "
        "is not: LeRobot's layer loops pass KV caches that layer checkpointing would drop).")
    image_size: int = param(0, "Square image side fed to the vision encoder (pixels); 0: the "
                            "model's (SmolVLA 512, PI0 / PI05 224).", low=0, high=4096)
    chunk_size: int = param(0, "Action chunk length H; 0: the model's (50).", low=0, high=1000)
    num_steps: int = param(10, "Euler steps of LeRobot's own sampler (the LeRobot policy's "
                           "select_action); our sampler takes its own.", low=1, high=1000)
    default_task: str = param("", "Task text for batches without 'task'.")
    target_time_hidden_dim: int = param(0, "Hidden width of phi_s; 0: the expert width.", low=0)
    lerobot_sampling: str = param(
        "jump", "How LeRobot's own Euler loop uses phi_s: jump (s = t - 1/N, 1 step = SnapFlow "
        "1-NFE) or local (s = t).", choices=("jump", "local"))
    lerobot_overrides: dict = param(
        {}, "Further LeRobot config fields, e.g. {num_vlm_layers: 8} or backbone_dims.",
        ros=False)

    def __post_init__(self) -> None:
        check_config(self)


def _locked(method: _F) -> _F:
    @functools.wraps(method)
    def call(self: LeRobotVLAPolicy, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def lerobot_dataset_stats(stats: NormalizationStats) -> dict[str, dict[str, torch.Tensor]]:
    """Our mean / std statistics in LeRobot's ``dataset_stats`` layout."""
    def tensor(values: Any) -> torch.Tensor:
        return torch.tensor(list(map(float, values)), dtype=torch.float32)

    return {
        "observation.state": {"mean": tensor(stats.state_mean), "std": tensor(stats.state_std)},
        "action": {"mean": tensor(stats.action_mean), "std": tensor(stats.action_std)},
    }


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

    Build with :meth:`build` (or :meth:`from_policy_config` from a checkpoint); subclasses set
    :attr:`lerobot_type` and implement :meth:`_encode_prefix` and :meth:`_denoise`.
    """

    lerobot_type: str = ""

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

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def build(cls, config: LeRobotVLAConfig, robot: RobotInterface,
              stats: NormalizationStats | None = None, *,
              lerobot_config: dict | None = None, checkpoint_dir: str | Path | None = None,
              load_weights: bool = True) -> LeRobotVLAPolicy:
        """Build the policy for ``robot``: from ``config.pretrained_path`` or randomly initialised.

        ``lerobot_config`` (a saved LeRobot config mapping) rebuilds exactly that architecture
        without loading weights (how checkpoints are restored); ``checkpoint_dir`` is where
        backbone files and processors were saved with it.
        """
        from snapflow_ros.policies.lerobot_vla import building

        return building.build_policy(cls, config, robot, stats, lerobot_config=lerobot_config,
                                     checkpoint_dir=checkpoint_dir, load_weights=load_weights)

    def policy_config_dict(self) -> dict:
        """Our config plus the full LeRobot config (``lerobot_config``), JSON-safe."""
        import draccus
        from lerobot.configs import PreTrainedConfig

        from snapflow_ros.config_fields import config_to_dict

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
        return cls.build(config, robot, stats, lerobot_config=lerobot_config,
                         checkpoint_dir=checkpoint_dir, load_weights=False)

    def normalization_stats(self) -> NormalizationStats | None:
        """The mean / std statistics of the processors; None if they normalise otherwise.

        None (e.g. PI05's quantiles kept from a LeRobot checkpoint) means the normalisation
        lives only in the saved LeRobot processors (``<checkpoint>/lerobot``).
        """
        if self._stats is not None:
            return self._stats
        from lerobot.configs import NormalizationMode
        from lerobot.processor import NormalizerProcessorStep

        mapping = self.lerobot_policy.config.normalization_mapping
        if any(mapping.get(k) != NormalizationMode.MEAN_STD for k in ("STATE", "ACTION")):
            return None
        for step in self.preprocessor.steps:
            if isinstance(step, NormalizerProcessorStep):
                stats = step.stats or {}
                try:
                    state, action = stats["observation.state"], stats["action"]
                    return NormalizationStats(state["mean"], state["std"], action["mean"],
                                              action["std"])
                except (KeyError, ConfigError):
                    return None
        return None

    def save_extra(self, directory: str | Path) -> None:
        """Write ``<directory>/lerobot``: this policy in LeRobot's ``save_pretrained`` layout.

        The weights there link to our ``model.safetensors`` (same keys), so they are not stored
        twice; the SmolVLM files (SmolVLA) or the tokenizer (PI0 / PI05) are copied in, so the
        folder rebuilds offline with ``from_pretrained``.
        """
        from snapflow_ros.policies.lerobot_vla.modeling_snapflow import (
            WEIGHTS_FILE,
            save_local_backbone,
        )

        target = Path(directory) / LEROBOT_DIR
        target.mkdir(parents=True, exist_ok=True)
        ours = Path(directory) / WEIGHTS_FILE
        if ours.is_file():
            self.lerobot_policy.config._save_pretrained(target)
            link = target / WEIGHTS_FILE
            link.unlink(missing_ok=True)
            try:
                os.symlink(os.path.join("..", WEIGHTS_FILE), link)
            except OSError:  # no symlinks here: store the weights a second time
                self.lerobot_policy.save_pretrained(target)
        else:
            self.lerobot_policy.save_pretrained(target)
        self.preprocessor.save_pretrained(target)
        self.postprocessor.save_pretrained(target)
        save_local_backbone(self.lerobot_policy, target)

    def load_extra(self, directory: str | Path) -> None:
        """After our loader filled the weights: check ``phi_s`` came from ``directory``'s file."""
        from snapflow_ros.policies.lerobot_vla.modeling_snapflow import verify_target_time_loaded

        verify_target_time_loaded(self.lerobot_policy, directory)

    # -- parameters ---------------------------------------------------------------------------

    def _prefix_modules(self) -> list[nn.Module]:
        raise NotImplementedError

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
        from snapflow_ros.policies.lerobot_vla.target_time import TARGET_TIME_MODULE

        return list(getattr(self.model, TARGET_TIME_MODULE).parameters())

    def trainable_parameters(self, stage: str) -> list[nn.Parameter]:
        """Parameters the optimiser updates in ``stage``.

        Teacher: LeRobot's trainable set without ``phi_s`` (it must stay zero); snapflow: the
        action expert, its projections and ``phi_s`` (everything but the prefix).
        """
        if stage == "teacher":
            skip = {id(p) for p in self.target_time_parameters()}
            return [p for p in self.parameters() if id(p) not in skip and p.requires_grad]
        frozen = {id(p) for p in self.prefix_parameters()}
        return [p for p in self.parameters() if id(p) not in frozen and p.requires_grad]

    def set_lerobot_num_steps(self, num_steps: int) -> None:
        """Euler steps of LeRobot's own sampler, set where the model reads it."""
        raise NotImplementedError

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

    def _to_model_action_space(self, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def _from_model_action_space(self, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def _encode_prefix(self, processed: dict) -> Context:
        raise NotImplementedError

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        raise NotImplementedError
