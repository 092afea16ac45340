# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow train``: train a teacher, or distil it with SnapFlow, from rosbag2 recordings.

Examples (one command each)::

    snapflow train --bags demos/ --camera-topic /cam_high/image_raw --state-topic /joint_states
        --action-topic /leader/joint_states --stage teacher --out runs/teacher
    snapflow train --bags demos/ --config config/train.yaml --stage snapflow
        --init runs/teacher --out runs/snapflow

Message types come from the bags (``--action-type`` only overrides, and must agree);
``snapflow bags info PATH`` prints the flags that read a recording. Flags override ``--config``;
``--set key=value`` overrides both (``train.``, ``data.``, ``policy.`` prefixes pick a section;
a bare key goes to the job, data or train settings that have it, else to the policy config).
Exit codes: 0 done, 2 bad input (one line naming the file, topic or
mismatch; nothing written), 130 interrupted (Ctrl-C, SIGTERM or SIGHUP: after a final
checkpoint; a second one: at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from snapflow_ros.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK
from snapflow_ros.cli.export import (
    add_bag_topic_arguments,
    merge_bag_topic_flags,
    read_config_sections,
)
from snapflow_ros.cli.signals import STOP_SIGNALS, StopRequested
from snapflow_ros.config_fields import ConfigError
from snapflow_ros.config_loading import set_nested, split_override
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.training.config import TRAINING_STAGES, TrainConfig
from snapflow_ros.training.train_job import (
    TrainJobConfig,
    TrainNodeConfig,
    train_job_from_mapping,
)

_SECTION_PREFIXES = ("policy", "train", "data", "job")


def add_arguments_train(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow train``."""
    add_bag_topic_arguments(parser)
    group = parser.add_argument_group("training")
    group.add_argument("--stage", choices=TRAINING_STAGES,
                       help="teacher: flow matching; snapflow: one-step self-distillation of "
                            "--init (required unless --config sets it)")
    group.add_argument("--init", metavar="CKPT",
                       help="start from this checkpoint or run directory: the teacher for "
                            "--stage snapflow, or a pretrained model")
    group.add_argument("--policy", choices=("compact", "smolvla", "pi0", "pi05"),
                       help="policy to build (default: compact, or the --init checkpoint's)")
    group.add_argument("--policy-path", metavar="DIR|HUB_ID",
                       help="smolvla / pi0 / pi05: LeRobot checkpoint to start from, a folder or "
                            "a hub id (lerobot/smolvla_base) in the Hugging Face cache")
    group.add_argument("--steps", type=int, metavar="N", help="total optimiser steps")
    group.add_argument("--batch-size", type=int, metavar="N",
                       help="samples per step (default: the policy's, e.g. compact 32, VLAs 4)")
    group.add_argument("--lr", type=float, metavar="F",
                       help="peak learning rate (default: the policy's, e.g. compact 3e-4, "
                            "VLAs 2.5e-5)")
    group.add_argument("--out", metavar="DIR", help="run directory for checkpoints and metrics")
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its latest checkpoint")
    group.add_argument("--device", metavar="cpu|cuda|auto",
                       help="training device (cuda:N also accepted; default auto)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--set", action="append", default=[], dest="overrides",
                       metavar="KEY=VALUE",
                       help="override any setting, e.g. --set chunk_size=16 --set "
                            "train.val_every=100 --set data.image_height=96 (repeatable)")


def _route_override(key: str) -> tuple[str, str]:
    """``(section, key)`` of a ``--set`` key; section is job, data, train or policy."""
    head, dot, rest = key.partition(".")
    if dot and head in _SECTION_PREFIXES:
        return head, rest
    job_names = {f.name for f in dataclasses.fields(TrainJobConfig)} - {"data", "train", "policy"}
    if key in job_names:
        return "job", key
    if key in {f.name for f in dataclasses.fields(BagTopicsConfig)}:
        return "data", key
    if key in {f.name for f in dataclasses.fields(TrainConfig)}:
        return "train", key
    if key in {f.name for f in dataclasses.fields(TrainNodeConfig)}:
        return "node", key
    return "policy", key


def job_from_args(args: argparse.Namespace) -> tuple[TrainJobConfig, bool]:
    """The job of ``--config``, the flags and ``--set`` (in that order), and whether to resume.

    ``--resume`` or ``resume: true`` in the config file resumes.
    """
    sections = read_config_sections(args)
    resume = bool(args.resume or sections.get("node", {}).get("resume", False))
    sections["data"] = merge_bag_topic_flags(sections["data"], args)
    for flag, key in (("bags", "bags"), ("out", "out_dir"), ("policy", "policy_type"),
                      ("policy_path", "policy_path"), ("init", "init_checkpoint"),
                      ("cache_dir", "cache_dir")):
        value = getattr(args, flag)
        if value:
            sections[key] = value
    for flag, key in (("stage", "stage"), ("steps", "steps"), ("batch_size", "batch_size"),
                      ("lr", "lr"), ("device", "device")):
        value = getattr(args, flag)
        if value is not None:
            sections["train"][key] = value
    for item in args.overrides:
        key, value = split_override(item)
        section, name = _route_override(key)
        if section == "job":
            sections[name] = value
        elif section == "node":
            raise ConfigError(f"--set {key}: node settings do not apply to snapflow train")
        elif section == "policy":
            set_nested(sections["policy"], name, value)
        else:
            sections[section][name] = value
    if "stage" not in sections["train"]:
        raise ConfigError("give --stage teacher|snapflow (or stage: in --config)")
    return train_job_from_mapping(sections), resume


def command_line(args: argparse.Namespace) -> str:
    """The command line recorded in checkpoints: as typed when known, else as parsed."""
    argv = getattr(args, "argv", None)
    if argv is not None and "train" in argv[:3]:
        # As main() records it: ["snapflow", (global flags,) "train", ...].
        return shlex.join(["snapflow", *argv[argv.index("train"):]])
    if argv is None and "train" in sys.argv[1:3]:
        argv = sys.argv[sys.argv.index("train") + 1:]
    if argv is not None:
        return shlex.join(["snapflow", "train", *argv])
    parts = ["snapflow", "train"]
    for key, value in sorted(vars(args).items()):
        if key in ("argv", "command", "func") or value in (None, False, [], ""):
            continue
        flag = "--" + {"camera_topics": "camera-topic", "camera_keys": "camera-key",
                       "overrides": "set"}.get(key, key.replace("_", "-"))
        if value is True:
            parts.append(flag)
        elif key == "bags":
            parts += [flag, *map(str, value)]
        elif isinstance(value, list) and key != "joint_names":
            for item in value:
                parts += [flag, str(item)]
        else:
            parts += [flag, ",".join(value) if key == "joint_names" else str(value)]
    return shlex.join(parts)


class _InterruptRequest:
    """Ctrl-C, SIGTERM or SIGHUP while training: stop after a final checkpoint; again: abort."""

    def __init__(self) -> None:
        self.requested = False
        self.training = False
        self._previous: dict = {}

    def __enter__(self) -> _InterruptRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN or sig == signal.SIGINT:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if not self.training or self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise StopRequested(signum)
        self.requested = True
        what = "interrupt" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{what}: stopping after a final checkpoint (Ctrl-C again to abort now)",
              file=sys.stderr, flush=True)

    def should_stop(self) -> bool:
        self.training = True
        return self.requested


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("snapflow_ros").setLevel(logging.INFO)


def run_train(args: argparse.Namespace) -> int:
    """Run ``snapflow train``: 0 done, 130 stopped early (bad input raises ConfigError / BagError).

    Errors and interrupts become exit codes in :func:`snapflow_ros.cli.main`.
    """
    _configure_logging()
    job, resume = job_from_args(args)
    from snapflow_ros.training.train_job import run_train_job

    interrupt = _InterruptRequest()
    with interrupt:
        result = run_train_job(job, resume=resume, progress=not args.no_progress,
                               should_stop=interrupt.should_stop,
                               on_progress=lambda _: setattr(interrupt, "training", True),
                               log=lambda line: print(line, flush=True),
                               command=command_line(args))
    if result.stopped_early:
        # Under torchrun every rank stops; one line for the user is enough.
        if os.environ.get("RANK", "0") == "0":
            print(f"interrupted at step {result.training.step}; resume with --resume --out "
                  f"{shlex.quote(str(Path(job.out_dir)))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
