# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One training job, from rosbag2 recordings to checkpoints: ``snapflow train`` and the node.

The same job runs from the command line (:mod:`snapflow_ros.cli.train`) and from the
``snapflow_trainer`` ROS 2 node (:mod:`snapflow_ros.nodes.train_node`).

:func:`run_train_job` finds the bags, loads their episodes (and reports what was read before any
training starts), splits them by episode, computes normalisation statistics on the training
split, computes the training recipe (each setting the user left unset takes the policy type's
default: :data:`~snapflow_ros.training.config.TRAINING_DEFAULTS`), builds the policy (from
scratch, from a pretrained LeRobot checkpoint, or from an ``init_checkpoint`` whose robot
interface must match the bags) and runs
:func:`~snapflow_ros.training.trainer.run_training`.

:class:`TrainJobConfig` is loaded from YAML in either of two forms (:func:`load_train_job_yaml`):

- sections: job keys at the top, ``data:`` (:class:`~snapflow_ros.data.config.BagTopicsConfig`),
  ``train:`` (:class:`~snapflow_ros.training.config.TrainConfig`) and ``policy:`` (the policy's
  own config, e.g. ``CompactPolicyConfig`` fields);
- ROS parameters (``snapflow_trainer: {ros__parameters: {...}}``, as ``config/train.yaml``):
  every key flat, policy settings as ``policy_overrides: ["key=value", ...]``.

Files and ``key=value`` items are read by :mod:`snapflow_ros.config_loading`, as for every command.

This module imports neither torch nor rclpy at module level.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from snapflow_ros.config_fields import (
    ConfigError,
    check_config,
    config_from_dict,
    param,
    render_ros_params_yaml,
)
from snapflow_ros.config_loading import (
    apply_overrides,
    node_parameters,
    read_yaml_mapping,
    set_nested,
    split_override,
)
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.policies.registry import lerobot_policy_types, policy_types
from snapflow_ros.training.config import TrainConfig

LOGGER = logging.getLogger(__name__)

NODE_NAME = "snapflow_trainer"
POLICY_TYPES = ("auto", *policy_types())
LEROBOT_POLICY_TYPES = lerobot_policy_types()
SECTIONS = {"data": BagTopicsConfig, "train": TrainConfig}
JOB_CONFIG_FILE = "train_job.yaml"
"""Written into the run directory: the resolved job, to see (and rerun) what was trained."""


@dataclasses.dataclass(frozen=True)
class TrainJobConfig:
    """What to train on, which policy, where to write it, and the data and training settings."""

    bags: tuple[str, ...] = param(
        (), "Rosbag2 recordings: bag directories, .mcap / .db3 files, or folders holding them.")
    out_dir: str = param(
        "", "Run directory: checkpoints/step_<n>, latest, metrics.jsonl, train_job.yaml.")
    policy_type: str = param(
        "auto", "Policy to train: compact (small, from scratch), smolvla, pi0, pi05 (LeRobot); "
        "auto: compact, or the init_checkpoint's type.", choices=POLICY_TYPES)
    policy_path: str = param(
        "", "smolvla / pi0 / pi05: the LeRobot checkpoint to start from (its pretrained_path): "
        "a folder, or a hub id such as lerobot/smolvla_base from the Hugging Face cache "
        "(HF_HUB_CACHE or HF_HOME; HF_HUB_OFFLINE=1 keeps it offline); empty: random "
        "initialisation.")
    init_checkpoint: str = param(
        "", "Start from this checkpoint (or a run directory's latest): the teacher for stage "
        "snapflow, or a pretrained model to fine-tune. Its joints and cameras must match the "
        "bags'.")
    policy_overrides: tuple[str, ...] = param(
        (), "Policy config overrides as key=value (YAML values), e.g. chunk_size=16, "
        "cnn_channels=[16,32] or color_jitter=0.2; dotted keys set nested mappings "
        "(lerobot_overrides.x=1).")
    cache_dir: str = param(
        "", "Keep decoded episodes here so that a rerun on the same bags skips decoding "
        "(empty: no cache).")
    policy: dict = param(
        {}, "Policy config overrides as a mapping (the 'policy:' section); policy_overrides "
        "apply on top.", ros=False)
    data: BagTopicsConfig = param(
        BagTopicsConfig(), "Which topics become training samples (the 'data:' section).",
        ros=False)
    train: TrainConfig = param(
        TrainConfig(), "Optimisation and SnapFlow settings (the 'train:' section).", ros=False)

    def __post_init__(self) -> None:
        check_config(self)
        for item in self.policy_overrides:
            split_override(item)

    def policy_config_overrides(self) -> dict:
        """The ``policy`` mapping with ``policy_overrides`` applied (dotted keys nested)."""
        return apply_overrides(self.policy, self.policy_overrides)


@dataclasses.dataclass(frozen=True)
class TrainNodeConfig:
    """How the ``snapflow_trainer`` node runs the job and reports on it.

    Declared here, free of rclpy, so that a job file holding these keys (``config/train.yaml``)
    loads anywhere; ``snapflow train`` honours ``resume`` and ignores the rest.
    """

    exit_when_done: bool = param(
        True, "Exit when the job ends or fails (false: stay up idle, keeping the final "
        "/diagnostics status and ~/checkpoint available).")
    resume: bool = param(False, "Continue the run in out_dir from its latest checkpoint.")
    progress_period_s: float = param(
        0.5, "Least time between ~/progress messages (s); the first and last step are always "
        "published.", low=0.0, high=3600.0)
    diagnostics_period_s: float = param(1.0, "Period of the /diagnostics status (s).",
                                        low=0.05, high=3600.0)

    def __post_init__(self) -> None:
        check_config(self)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def job_mapping_sections(data: dict) -> dict:
    """Sort a flat or sectioned mapping into job keys and data, train, policy, node sections.

    Keys of :class:`BagTopicsConfig`, :class:`TrainConfig` or :class:`TrainNodeConfig` found at
    the top (the ROS parameter form) move into their section. Unknown keys raise
    :class:`ConfigError`.
    """
    job_names = _field_names(TrainJobConfig)
    out: dict = {"data": {}, "train": {}, "policy": {}, "node": {}}
    for section in ("data", "train", "policy", "node"):
        value = data.get(section) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"section '{section}' must be a mapping, got {value!r}")
        out[section].update(value)
    unknown = []
    for key, value in data.items():
        if key in ("data", "train", "policy", "node"):
            continue
        if key in job_names:
            out[key] = value
        elif key in _field_names(BagTopicsConfig):
            out["data"][key] = value
        elif key in _field_names(TrainConfig):
            out["train"][key] = value
        elif key in _field_names(TrainNodeConfig):
            out["node"][key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ConfigError(
            f"unknown training option(s) {', '.join(sorted(unknown))}; options are the job's "
            f"({', '.join(sorted(job_names - set(SECTIONS) - {'policy'}))}), the data "
            "section's (BagTopicsConfig), the train section's (TrainConfig) and the node "
            "section's (TrainNodeConfig)")
    return out


def train_job_from_mapping(data: dict | None) -> TrainJobConfig:
    """Build a :class:`TrainJobConfig` from a sectioned or flat (ROS parameter) mapping."""
    sections = job_mapping_sections(dict(data or {}))
    config_from_dict(TrainNodeConfig, sections.pop("node"), where="node.")  # checked, not kept
    sections["data"] = config_from_dict(BagTopicsConfig, sections["data"], where="data.")
    sections["train"] = config_from_dict(TrainConfig, sections["train"], where="train.")
    return config_from_dict(TrainJobConfig, sections)


def read_train_job_yaml(path: str | Path, node_name: str = NODE_NAME) -> dict:
    """The raw mapping of a job YAML file (sections, or a ROS parameter file for ``node_name``).

    Kept raw so that command-line flags can be merged in before fields that derive from others
    (camera keys from topics, action joints from joints) are filled in.
    """
    data = node_parameters(read_yaml_mapping(path), node_name, path=path)
    try:
        return job_mapping_sections(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_train_job_yaml(path: str | Path, node_name: str = NODE_NAME) -> TrainJobConfig:
    """Load a :class:`TrainJobConfig` from a sectioned YAML file or a ROS parameter file."""
    try:
        return train_job_from_mapping(read_train_job_yaml(path, node_name))
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") \
            from exc


def render_train_params_yaml(extra_config_classes: Sequence[type] = (), *,
                             node_name: str = NODE_NAME, header: str = "") -> str:
    """The ROS parameter file of the trainer: job, data and train parameters, documented.

    Rendered from the classes, not instances, so that fields derived in ``__post_init__``
    (camera keys, action joints) keep their declared empty defaults and follow edits to the
    fields they derive from.
    """
    parts = [render_ros_params_yaml(node_name, TrainJobConfig, header=header)]
    for cls in (BagTopicsConfig, TrainConfig, *extra_config_classes):
        body = render_ros_params_yaml(node_name, cls).splitlines()[2:]
        parts.append("\n".join(body) + "\n")
    return "".join(parts)


# ---------------------------------------------------------------------------------- running

@dataclasses.dataclass
class TrainJobResult:
    """Outcome of :func:`run_train_job`."""

    training: Any
    """The :class:`~snapflow_ros.training.trainer.TrainResult`."""
    summary: Any
    """The :class:`~snapflow_ros.data.episodes.ReadSummary` of the bags read."""
    out_dir: Path
    policy_type: str
    train_episodes: int
    val_episodes: int

    @property
    def checkpoint(self) -> Path | None:
        """The last checkpoint written."""
        return self.training.checkpoint

    @property
    def stopped_early(self) -> bool:
        """True when ``should_stop`` ended the run before ``train.steps``."""
        return self.training.stopped_early


def _check_request(job: TrainJobConfig, resume: bool) -> None:
    """Refuse an incomplete or contradictory job before any file is read or written."""
    if not job.bags:
        raise ConfigError("no bags given: set bags (--bags PATH ...)")
    if not job.out_dir:
        raise ConfigError("no output directory given: set out_dir (--out DIR)")
    if job.train.stage == "snapflow" and not job.init_checkpoint and not (
            job.policy_type in LEROBOT_POLICY_TYPES and job.policy_path):
        raise ConfigError(
            "stage snapflow distils a trained flow-matching teacher: pass --init CHECKPOINT "
            "(init_checkpoint: a teacher checkpoint or run directory), or for smolvla / pi0 / "
            "pi05 --policy-path with a pretrained LeRobot checkpoint")
    if job.policy_path and job.policy_type not in LEROBOT_POLICY_TYPES:
        raise ConfigError(
            f"policy_path is for the LeRobot policies ({', '.join(LEROBOT_POLICY_TYPES)}); "
            f"policy_type is {job.policy_type!r}")
    if job.policy_path and job.init_checkpoint:
        raise ConfigError("give either init_checkpoint (--init) or policy_path (--policy-path), "
                          "not both")
    if job.policy_path:
        from snapflow_ros.policies.lerobot_vla.hub_cache import (
            download_command,
            is_repo_id,
            resolve_checkpoint_folder,
        )

        # A folder, or a hub id's snapshot in the Hugging Face cache (named with its download
        # command when missing offline): refused here, before any bag is read.
        folder = resolve_checkpoint_folder(job.policy_path)
        for name in ("config.json", "model.safetensors"):
            if not (folder / name).is_file():
                # A partial download (hf download ID config.json) lacks the weights.
                fix = (f"; download it with: {download_command(job.policy_path)}"
                       if is_repo_id(job.policy_path) else "")
                raise ConfigError(f"policy_path {job.policy_path}: not a local LeRobot "
                                  f"checkpoint folder (no {name} in {folder}){fix}")
    out_dir = Path(job.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output directory {out_dir} exists and is not a directory")
    if not resume and out_dir.is_dir() and ((out_dir / "latest").exists()
                                            or (out_dir / "checkpoints").exists()):
        raise ConfigError(
            f"output directory {out_dir} already holds a training run: pass --resume to "
            "continue it, or choose another --out")


def _bags_mismatch(error: Exception, bags: Iterable[str]) -> Exception:
    """Reword a checkpoint/robot mismatch for bags ("robot" there means the recordings)."""
    from snapflow_ros.policies.base import CheckpointMismatchError

    message = str(error).replace("does not match the robot", "does not match the bags").replace(
        "robot has", "the bags have")
    if "environment_state_names" in message:
        message += ("; read the checkpoint's object pose topics with --environment-state-topics "
                    "(data.environment_state_topics)")
    return CheckpointMismatchError(f"{message} (bags: {', '.join(bags)})")


def _init_robot_and_data(job: TrainJobConfig, log: Callable[[str], None]):
    """The init checkpoint's robot interface and the data config adjusted to its image size."""
    from snapflow_ros.policies.base import CheckpointMismatchError, RobotInterface
    from snapflow_ros.policies.checkpoint import checkpoint_robot, read_checkpoint_info

    info = read_checkpoint_info(job.init_checkpoint)
    kind = info["config"]["policy_type"]
    if job.policy_type not in ("auto", kind):
        raise ConfigError(f"--init checkpoint {info['checkpoint_dir']} is a {kind!r} policy, "
                          f"but policy_type is {job.policy_type!r}")
    robot = checkpoint_robot(job.init_checkpoint)
    data = job.data
    # Cameras are known from the config alone: fail before spending minutes reading bags.
    try:
        robot.check_matches(RobotInterface(joint_names=robot.joint_names,
                                           action_names=robot.action_names,
                                           camera_keys=data.camera_keys,
                                           environment_state_names=(
                                               robot.environment_state_names)),
                            what=f"--init checkpoint {info['checkpoint_dir']}")
    except CheckpointMismatchError as exc:
        raise _bags_mismatch(exc, job.bags) from None
    size = (robot.image_height, robot.image_width)
    if (data.image_height, data.image_width) != size:
        log(f"note: reading images at {size[0]}x{size[1]}, the size the --init checkpoint was "
            f"trained at (the data config says {data.image_height}x{data.image_width})")
        data = dataclasses.replace(data, image_height=size[0], image_width=size[1])
    return info, kind, robot, data


def _load_init_policy(info: dict, overrides: dict):
    """The ``init_checkpoint`` policy, rebuilt with ``overrides`` applied to its config."""
    from snapflow_ros.policies.checkpoint import CheckpointError, load_policy

    checkpoint = Path(info["checkpoint_dir"])
    if not overrides:
        return load_policy(checkpoint)
    config = dict(info["config"]["policy_config"])
    for key, value in overrides.items():
        set_nested(config, key, value)
    try:
        return load_policy(checkpoint, policy_config=config)
    except CheckpointError as exc:
        raise ConfigError(f"policy overrides {sorted(overrides)} do not fit --init checkpoint "
                          f"{checkpoint} (a change of architecture?): {exc}") from exc


def _build_new_policy(job: TrainJobConfig, kind: str, robot, stats, overrides: dict):
    """A fresh policy (seeded with ``train.seed``) or a pretrained LeRobot one."""
    import torch

    from snapflow_ros.policies.registry import new_policy
    from snapflow_ros.training.distributed import DistributedRun

    config = dict(overrides)
    torch.manual_seed(job.train.seed)
    if kind in LEROBOT_POLICY_TYPES:
        if job.policy_path:
            config.setdefault("pretrained_path", job.policy_path)
        # Under torchrun each process builds on its own GPU (cuda:LOCAL_RANK).
        device = DistributedRun.from_environment().device(job.train.device)
        config.setdefault("device", str(device))
    return new_policy(kind, config, robot, stats)


def _with_policy_recipe(job: TrainJobConfig, kind: str,
                        log: Callable[[str], None]) -> TrainJobConfig:
    """``job`` with the unset recipe fields of its train settings taken from ``kind``'s defaults.

    What the user set (flag, YAML key, ``--set``, ROS parameter) is kept; the log line says
    which values are the policy's defaults.
    """
    from snapflow_ros.training.config import training_defaults

    unset = job.train.unset_recipe_fields()
    train = job.train.for_policy(kind)
    if unset:
        values = ", ".join(f"{name} {getattr(train, name)}" for name in unset)
        log(f"training recipe: {kind} defaults for {values} ({training_defaults(kind).source}); "
            "set them with --lr / --batch-size / --set train.<name>=...")
    return dataclasses.replace(job, train=train)


def run_train_job(
    job: TrainJobConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_progress: Callable[[dict], None] | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] = print,
    command: str = "",
) -> TrainJobResult:
    """Bags -> episodes -> split -> stats -> policy -> :func:`run_training`; returns the result.

    ``log`` receives human-readable lines (the bag read summary before training starts).
    ``command`` is recorded in every checkpoint's ``info.json``. Bad input raises
    :class:`~snapflow_ros.data.bag_reader.BagError` or :class:`ConfigError` (including
    :class:`~snapflow_ros.policies.base.CheckpointMismatchError`) before anything is written
    to ``out_dir``; a run that fails before its first checkpoint leaves no ``out_dir`` behind.
    """
    from snapflow_ros.data.dataset import (
        ChunkDataset,
        compute_normalization_stats,
        robot_interface,
        split_episodes,
    )
    from snapflow_ros.data.episodes import load_episodes
    from snapflow_ros.policies.base import CheckpointMismatchError
    from snapflow_ros.training.distributed import DistributedRun
    from snapflow_ros.training.trainer import run_training

    # Under torchrun every process reads the bags and builds the same policy; rank 0 alone
    # reports, writes the run directory and cleans it up after a failure.
    main_process = DistributedRun.from_environment().is_main
    if not main_process:
        log, progress = _no_log, False
    _check_request(job, resume)
    overrides = job.policy_config_overrides()
    data = job.data
    init_info = init_robot = None
    kind = "compact" if job.policy_type == "auto" else job.policy_type
    if job.init_checkpoint:
        init_info, kind, init_robot, data = _init_robot_and_data(job, log)
    job = _with_policy_recipe(job, kind, log)

    episodes, summary = load_episodes(list(job.bags), data, progress=progress,
                                      cache_dir=job.cache_dir or None)
    log(summary.format())
    if len(episodes) < 2 or job.train.val_fraction == 0:
        if job.train.val_fraction > 0:
            log(f"note: {len(episodes)} episode: nothing held out for validation")
        train_episodes, val_episodes = list(episodes), []
    else:
        train_episodes, val_episodes = split_episodes(
            episodes, val_fraction=job.train.val_fraction, seed=job.train.seed)
    bag_robot = robot_interface(episodes)

    if init_info is not None:
        try:
            init_robot.check_matches(bag_robot,
                                     what=f"--init checkpoint {init_info['checkpoint_dir']}")
        except CheckpointMismatchError as exc:
            raise _bags_mismatch(exc, job.bags) from None
        policy = _load_init_policy(init_info, overrides)
    else:
        stats = compute_normalization_stats(train_episodes)
        policy = _build_new_policy(job, kind, bag_robot, stats, overrides)

    train_set = ChunkDataset(train_episodes, policy.chunk_size)
    val_set = ChunkDataset(val_episodes, policy.chunk_size) if val_episodes else None
    trainable = sum(p.numel() for p in policy.trainable_parameters(job.train.stage))
    total = sum(p.numel() for p in policy.parameters())
    log(f"policy {kind}: {total:,} parameters, {trainable:,} trained in stage "
        f"{job.train.stage}; chunk {policy.chunk_size}; joints {list(bag_robot.joint_names)}, "
        f"cameras {list(bag_robot.camera_keys)} at {bag_robot.image_height}x"
        f"{bag_robot.image_width}")
    log(f"episodes: {len(train_episodes)} train ({len(train_set)} samples), "
        f"{len(val_episodes)} validation ({len(val_set) if val_set else 0} samples)")

    out_dir = Path(job.out_dir)
    created = main_process and not out_dir.exists()
    try:
        if main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_job_yaml(out_dir / JOB_CONFIG_FILE, job, kind, command)
        result = run_training(policy, train_set, val_set, job.train, out_dir, command=command,
                              resume=resume, progress=progress, on_progress=on_progress,
                              on_checkpoint=on_checkpoint, should_stop=should_stop)
    except BaseException:
        if created and not (out_dir / "checkpoints").exists():
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    log(f"{'stopped' if result.stopped_early else 'finished'} at step {result.step}: loss "
        f"{result.loss:.5g}" + "".join(f", {k} {v:.5g}" for k, v in result.val_metrics.items()
                                      if k.startswith("val_") and k != "val_samples"))
    log(f"checkpoint: {result.checkpoint}")
    return TrainJobResult(training=result, summary=summary, out_dir=out_dir, policy_type=kind,
                          train_episodes=len(train_episodes), val_episodes=len(val_episodes))


def _no_log(line: str) -> None:
    """The ``log`` of a process other than rank 0: its lines would repeat rank 0's."""


def _write_job_yaml(path: Path, job: TrainJobConfig, kind: str, command: str) -> None:
    from snapflow_ros.config_fields import config_to_dict

    data = config_to_dict(job)
    data["policy_type"] = kind
    text = (f"# the job of this run{f': {command}' if command else ''}\n"
            + yaml.safe_dump(data, sort_keys=False))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
