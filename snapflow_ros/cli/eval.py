# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow eval``: score checkpoints on held-out recordings, offline or through ROS 2.

Examples::

    snapflow eval --checkpoint teacher=runs/teacher --checkpoint snapflow=runs/snapflow
        --bags demos/ --steps 1,2,4,10 --json eval.json --report eval_report/
    snapflow eval --checkpoint runs/snapflow --bags new_demos/ --all-episodes
    snapflow eval --live --checkpoint runs/snapflow --bags demos/ --steps 1
    snapflow eval --checkpoint snapflow=runs/snapflow --export f32=runs/snapflow_onnx
        --export int8=runs/snapflow_onnx@int8 --backend onnxruntime --bags demos/ --steps 1

Held-out episodes: the training run's validation split, rebuilt with the same ``val_fraction``
and seed (read from the run's ``train_job.yaml`` when the checkpoint lies in a run directory,
else ``--val-fraction`` / ``--split-seed``; the bags must be the ones trained on, in the same
order), or with ``--all-episodes`` every episode of recordings that were never trained on.
Topics come from ``--config`` or the run's ``train_job.yaml``, overridden by the same topic
flags as ``snapflow train``; images are read at the checkpoint's size unless set explicitly.
``--samples-per-frame K`` (default 8; 1 disables) samples every frame K times for the
distribution metrics beside MSE (best-of-K MSE, sample spread, share of samples between modes
and mode coverage where a frame has several recorded truths; see
:mod:`snapflow_ros.evaluation.offline`). ``--export [NAME=]DIR`` scores a ``snapflow export onnx``
folder on ``--backend`` (onnxruntime or openvino) in ``--precision`` beside the checkpoints, on
the same frames from the same noise: the action error int8 graphs cost, measured on held-out
bags (the split comes from the export's source checkpoint when no --checkpoint is given).
``DIR@int8``, ``DIR@openvino`` or ``DIR@openvino,bfloat16`` set one export's engine, so engines
and precisions of one folder are compared in one run.

Exit codes: 0 done, 2 bad input (one message naming the file, topic or mismatch; no JSON or
report written), 130 interrupted (Ctrl-C, SIGTERM or SIGHUP; a node ``--live`` started is
stopped first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from snapflow_ros.cli.exit_codes import EXIT_OK
from snapflow_ros.cli.export import (
    add_bag_topic_arguments,
    merge_bag_topic_flags,
    read_config_sections,
)
from snapflow_ros.config_fields import ConfigError, config_from_dict, config_to_dict
from snapflow_ros.config_loading import read_yaml_mapping
from snapflow_ros.data.config import BagTopicsConfig

TRAIN_JOB_FILE = "train_job.yaml"
EXPORT_PRECISIONS = ("float32", "int8", "bfloat16")
EXPORT_BACKENDS = ("onnxruntime", "openvino")
"""``--precision`` of an export: its graph files, or float32 graphs in bf16 (OpenVINO)."""


def _step_list(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not steps or any(s < 1 for s in steps):
        raise argparse.ArgumentTypeError(f"step counts must be integers >= 1, got {text!r}")
    return steps


def _mode_list(text: str) -> list[str]:
    from snapflow_ros.snapflow.sampler import SAMPLER_MODES

    modes = [part.strip() for part in text.split(",") if part.strip()]
    bad = [m for m in modes if m not in SAMPLER_MODES]
    if not modes or bad:
        raise argparse.ArgumentTypeError(
            f"samplers must be among {', '.join(SAMPLER_MODES)}, got {text!r}")
    return modes


def add_arguments_eval(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow eval``."""
    parser.add_argument("--checkpoint", action="append", dest="checkpoints", default=[],
                        metavar="[NAME=]DIR",
                        help="checkpoint or training run directory to evaluate; repeatable; "
                             "NAME labels it in the table (default: the folder name)")
    parser.add_argument("--export", action="append", dest="exports", default=[],
                        metavar="[NAME=]DIR[@ENGINE]",
                        help="`snapflow export onnx` folder to evaluate on --backend; repeatable; "
                             "@int8, @openvino or @openvino,bfloat16 override --backend / "
                             "--precision for this one (several engines side by side)")
    parser.add_argument("--backend", choices=EXPORT_BACKENDS, default="onnxruntime",
                        help="engine that runs the --export folders (default onnxruntime)")
    parser.add_argument("--precision", choices=EXPORT_PRECISIONS,
                        default="float32",
                        help="graphs of the --export folders: float32, int8 (--quantize "
                             "dynamic) or bfloat16 (openvino's bf16 hint; default float32)")
    add_bag_topic_arguments(parser)
    group = parser.add_argument_group("evaluation")
    group.add_argument("--steps", type=_step_list, default=[1, 2, 4, 10], metavar="1,2,4,10",
                       help="sampler step counts (default 1,2,4,10)")
    group.add_argument("--modes", type=_mode_list, default=None, metavar="jump,euler",
                       help="k-step samplers for SnapFlow checkpoints (default: both)")
    group.add_argument("--samples", type=int, default=500, metavar="N",
                       help="held-out frames scored per checkpoint and step count (default 500)")
    group.add_argument("--seed", type=int, default=0,
                       help="seed of the frame subsample and of the noise (default 0)")
    group.add_argument("--split-seed", type=int, default=None, metavar="SEED",
                       help="seed of the train/validation split (default: the training run's "
                            "seed, else --seed)")
    group.add_argument("--val-fraction", type=float, default=None, metavar="F",
                       help="fraction of episodes held out (default: the training run's, "
                            "else 0.1)")
    group.add_argument("--all-episodes", action="store_true",
                       help="score every episode: for recordings that were never trained on")
    group.add_argument("--spread-seeds", type=int, default=4, metavar="K",
                       help="noise seeds per observation for the spread metric (default 4; "
                            "< 2 disables)")
    group.add_argument("--spread-samples", type=int, default=64, metavar="N",
                       help="frames used for the spread metric (default 64)")
    group.add_argument("--samples-per-frame", type=int, default=8, metavar="K",
                       help="noise samples per frame for best-of-K MSE, the share of samples "
                            "between modes and mode coverage (default 8; 1 disables)")
    group.add_argument("--distinct-truth-mse", type=float, default=0.0, metavar="MSE",
                       help="two recorded chunks for the same observation are different "
                            "truths above this MSE (default 0: ten times the lowest teacher "
                            "median best-of-K MSE)")
    group.add_argument("--truth-match-tolerance", type=float, default=1e-6, metavar="F",
                       help="same observation: every state / environment-state dimension "
                            "within F of its range (default 1e-6)")
    group.add_argument("--batch-size", type=int, default=32, metavar="N",
                       help="observations per forward pass (default 32)")
    group.add_argument("--latency-calls", type=int, default=20, metavar="N",
                       help="timed single-observation calls per step count (default 20)")
    group.add_argument("--device", default="cpu", help="torch device (default cpu)")
    group.add_argument("--threads", type=int, default=0, metavar="N",
                       help="torch CPU threads (default: torch's choice; 1 is fastest on a "
                            "busy machine)")
    group.add_argument("--json", metavar="OUT", help="write the results as JSON here")
    group.add_argument("--report", metavar="DIR",
                       help="write report.md and PNG plots into this directory (replaced)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    live = parser.add_argument_group("live replay through ROS 2 (--live)")
    live.add_argument("--live", action="store_true",
                      help="play the held-out bags into a running policy node and score what "
                           "it publishes on its joint_trajectory topic")
    live.add_argument("--node-running", action="store_true",
                      help="use a policy node that is already running (else one is started)")
    live.add_argument("--node-name", default="snapflow_policy",
                      help="name of the policy node (default snapflow_policy)")
    live.add_argument("--n-act", type=int, default=None, metavar="N",
                      help="actions executed per chunk (the node's n_act; default: the node's)")
    live.add_argument("--rate", type=float, default=1.0, metavar="F",
                      help="playback speed factor (default 1.0: real time)")


# ------------------------------------------------------------------------ settings

def parse_checkpoint_specs(specs: list[str]) -> dict[str, Path]:
    """``["name=dir", "dir"]`` -> ``{name: dir}``; names must be unique."""
    named: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or "/" in name or not name:
            name, path = "", spec
        path_obj = Path(path)
        label = name or path_obj.resolve().name
        if label in ("checkpoints",) or label.startswith("step_"):
            label = path_obj.resolve().parent.parent.name or label
        if label in named:
            raise ConfigError(f"two checkpoints are named {label!r}: label them --checkpoint "
                              "NAME=DIR")
        named[label] = path_obj
    return named


def training_job_file(checkpoint_dir: Path) -> Path | None:
    """The ``train_job.yaml`` of the run a checkpoint belongs to, if there is one."""
    for folder in (checkpoint_dir, checkpoint_dir.parent, checkpoint_dir.parent.parent):
        candidate = folder / TRAIN_JOB_FILE
        if candidate.is_file():
            return candidate
    return None


def _read_training_job(checkpoint_dir: Path) -> dict:
    path = training_job_file(checkpoint_dir)
    return read_yaml_mapping(path) if path is not None else {}


def _checkpoint_dirs(named: dict[str, Path]) -> dict[str, Path]:
    from snapflow_ros.policies.checkpoint import resolve_checkpoint

    return {name: resolve_checkpoint(path) for name, path in named.items()}


def _resolve_settings(args: argparse.Namespace, checkpoints: dict[str, Path],
                      log, exported: dict | None = None) -> tuple[BagTopicsConfig, list[str], dict]:
    """Data config, bag paths and split settings from flags, --config and the training run.

    Without checkpoints the first export's source checkpoint (when it is still there) stands in
    for the run, and its manifest's robot for the checkpoint's.
    """
    from snapflow_ros.policies.checkpoint import checkpoint_robot

    first = next(iter(checkpoints.values())) if checkpoints else None
    export_robot = None
    if first is None and exported:
        export = next(iter(exported.values()))
        export_robot = export.robot
        source = Path(str((export.runner.manifest.get("source_checkpoint") or {}).get("path")
                          or ""))
        first = source if str(source) not in ("", ".") and source.is_dir() else None
    job = _read_training_job(first) if first is not None else {}
    if args.config:
        sections = read_config_sections(args)
        data = dict(sections.get("data") or {})
        train = dict(sections.get("train") or {})
        bags = list(sections.get("bags") or [])
        explicit = set(data)
    else:
        data = dict(job.get("data") or {})
        train = dict(job.get("train") or {})
        bags = list(job.get("bags") or [])
        # The run's file lists every field; its image size is the data config's, which an
        # --init checkpoint may have overridden: the checkpoint's own size wins.
        explicit = set()
        if job:
            log(f"topics and split settings from {training_job_file(first)}")
    data = merge_bag_topic_flags(data, args)
    if first is not None or export_robot is not None:
        robot = checkpoint_robot(first) if first is not None else export_robot
        # Read images at the size the model was trained at, and the joints it uses.
        if "image_height" not in explicit:
            data["image_height"] = robot.image_height
        if "image_width" not in explicit:
            data["image_width"] = robot.image_width
        if not data.get("joint_names"):
            data["joint_names"] = list(robot.joint_names)
            if not data.get("action_joint_names") and tuple(robot.action_names) != tuple(
                    robot.joint_names):
                data["action_joint_names"] = list(robot.action_names)
    topics = config_from_dict(BagTopicsConfig, data, where="data.")
    if args.bags:
        if bags and [str(Path(b)) for b in args.bags] != [str(Path(b)) for b in bags] \
                and not args.all_episodes:
            log("warning: --bags differ from the bags the run was trained on; the validation "
                "split is only the held-out set if the episodes are the same, in the same order")
        bags = list(args.bags)
    if not bags:
        raise ConfigError("no bags given: pass --bags PATH ...")
    split = {
        "val_fraction": args.val_fraction if args.val_fraction is not None
        else float(train.get("val_fraction", 0.1)),
        "split_seed": args.split_seed if args.split_seed is not None
        else int(train.get("seed", args.seed)),
    }
    return topics, bags, split


def _check_interfaces(checkpoints: dict[str, Path], episodes) -> None:
    """Every checkpoint must use the joints and cameras the bags provide; name any mismatch."""
    from snapflow_ros.data.dataset import robot_interface
    from snapflow_ros.policies.base import CheckpointMismatchError
    from snapflow_ros.policies.checkpoint import checkpoint_robot

    bag_robot = robot_interface(episodes)
    for name, path in checkpoints.items():
        try:
            checkpoint_robot(path).check_matches(bag_robot, what=f"checkpoint {name} ({path})")
        except CheckpointMismatchError as exc:
            message = str(exc).replace("does not match the robot", "does not match the bags")
            raise CheckpointMismatchError(
                message.replace("robot has", "the bags have") + "; choose the topics and "
                "joints with --config / --camera-topic / --joint-names") from None


def _check_output_paths(args: argparse.Namespace) -> None:
    for flag, value in (("--json", args.json), ("--report", args.report)):
        if not value:
            continue
        path = Path(value)
        if flag == "--json" and path.is_dir():
            raise ConfigError(f"--json {path} is a directory; give a file name")
        if flag == "--report" and path.exists() and not path.is_dir():
            raise ConfigError(f"--report {path} exists and is not a directory")
        parent = path.resolve().parent
        while not parent.exists():
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"{flag} {path}: {parent} is not writable")


def write_json_atomically(data: Any, path: str | Path) -> Path:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_outputs(result: dict, args: argparse.Namespace, title: str) -> None:
    """Report first (it can fail on plotting), JSON last: either both land or neither."""
    from snapflow_ros.evaluation.report import write_report

    written_report = None
    if args.report:
        written_report = write_report(result, args.report, title=title)
    try:
        if args.json:
            write_json_atomically(result, args.json)
    except BaseException:
        if written_report is not None:
            import shutil

            shutil.rmtree(written_report, ignore_errors=True)
        raise


def _eval_config(args: argparse.Namespace, split: dict):
    from snapflow_ros.config_fields import replace_config
    from snapflow_ros.evaluation.offline import OfflineEvalConfig

    changes = dict(step_counts=list(args.steps), samples=args.samples, seed=args.seed,
                   split_seed=split["split_seed"], val_fraction=split["val_fraction"],
                   all_episodes=args.all_episodes, spread_seeds=args.spread_seeds,
                   spread_samples=args.spread_samples, batch_size=args.batch_size,
                   samples_per_frame=args.samples_per_frame,
                   distinct_truth_mse=args.distinct_truth_mse,
                   truth_match_tolerance=args.truth_match_tolerance,
                   latency_calls=args.latency_calls, device=args.device)
    if args.modes:
        changes["modes"] = list(args.modes)
    return replace_config(OfflineEvalConfig(), **changes)


def _live_config(args: argparse.Namespace):
    from snapflow_ros.evaluation.live_replay import LiveReplayConfig

    return LiveReplayConfig(
        node_name=args.node_name, node_running=args.node_running, rate=args.rate,
        n_act=args.n_act or 0, seed=args.seed,
        device="cuda" if str(args.device).startswith("cuda") else "cpu")


def _load_exports(args: argparse.Namespace) -> dict:
    """``--export`` folders loaded on ``--backend`` (an engine or precision missing fails now)."""
    from snapflow_ros.evaluation.exported_policy import ExportedGraphPolicy

    specs, engines = [], []
    for spec in args.exports:
        folder, at, suffix = spec.rpartition("@")
        tokens = suffix.split(",") if at else []
        if tokens and all(t in EXPORT_PRECISIONS or t in EXPORT_BACKENDS for t in tokens):
            # DIR@int8, DIR@openvino or DIR@openvino,bfloat16: this export's own engine.
            backend = next((t for t in tokens if t in EXPORT_BACKENDS), args.backend)
            precision = next((t for t in tokens if t in EXPORT_PRECISIONS), args.precision)
            specs.append(folder)
        else:
            backend, precision = args.backend, args.precision
            specs.append(spec)
        if precision == "bfloat16" and backend != "openvino":
            raise ConfigError(f"--export {spec}: precision bfloat16 is an option of "
                              "--backend openvino")
        engines.append((backend, precision))
    # The engine's device: a CUDA torch device asks onnxruntime for its CUDA provider.
    device = "cuda" if str(args.device).startswith("cuda") else "cpu"
    return {name: ExportedGraphPolicy(path, backend, precision, args.threads, device)
            for (name, path), (backend, precision) in zip(parse_checkpoint_specs(specs).items(),
                                                          engines)}


def run_eval(args: argparse.Namespace) -> int:
    """Run ``snapflow eval``; returns 0 (bad input raises ConfigError / BagError first).

    Nothing is written unless the evaluation completes; errors and interrupts become exit codes
    in :func:`snapflow_ros.cli.main`.
    """
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if not args.checkpoints and not args.exports and not (args.live and args.node_running):
        raise ConfigError("no checkpoint given: pass --checkpoint [NAME=]DIR or --export "
                          "[NAME=]DIR (repeatable)")
    if args.live and len(args.checkpoints) > 1:
        raise ConfigError("--live evaluates one checkpoint (the node runs one)")
    if args.live and args.exports:
        raise ConfigError("--live scores the running node: start it with -p backend:=... on "
                          "the export instead of --export")
    if args.precision != "float32" and not args.exports:
        raise ConfigError("--precision applies to --export folders; none given")
    _check_output_paths(args)
    if args.live:
        _live_config(args)  # refuse a bad --rate / --n-act before reading any bag
    named = parse_checkpoint_specs(args.checkpoints)
    checkpoints = _checkpoint_dirs(named)
    exported = _load_exports(args)
    clash = sorted(set(exported) & set(checkpoints))
    if clash:
        raise ConfigError(f"a checkpoint and an export are both named {clash[0]!r}: label them "
                          "NAME=DIR")
    topics, bags, split = _resolve_settings(args, checkpoints, log, exported)
    config = _eval_config(args, split)
    import torch

    from snapflow_ros.devices import resolve_device

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        resolve_device(args.device)
    except ConfigError as exc:
        raise ConfigError(f"--device {args.device}: {exc}") from None
    from snapflow_ros.data.episodes import load_episodes

    episodes, summary = load_episodes(bags, topics, progress=not args.no_progress,
                                      cache_dir=args.cache_dir or None)
    log(summary.format())
    _check_interfaces(checkpoints, episodes)
    if args.live:
        from snapflow_ros.nodes.harness.live_replay import run_live_evaluation

        result = run_live_evaluation(_live_config(args), next(iter(checkpoints.items()), None),
                                     episodes, topics, config, log=log)
        title = "SnapFlow live replay evaluation"
    else:
        from snapflow_ros.evaluation.offline import evaluate_checkpoints

        try:
            result = evaluate_checkpoints({**checkpoints, **exported}, episodes, config,
                                          progress=not args.no_progress)
        finally:
            for export in exported.values():
                export.close()
        title = "SnapFlow offline evaluation"
    result["data"] = config_to_dict(topics)
    result["bags"] = [str(b) for b in bags]
    from snapflow_ros.evaluation.report import format_table

    _write_outputs(result, args, title)
    print(format_table(result))
    for flag, value in (("report", args.report), ("json", args.json)):
        if value:
            print(f"{flag}: {value}")
    return EXIT_OK
