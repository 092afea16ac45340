# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow export-lerobot`` (bags -> LeRobotDataset v3) and ``export onnx`` (ONNX graphs).

``export-lerobot`` writes rosbag2 recordings as a LeRobotDataset v3, offline; ``export onnx``
writes a checkpoint as ONNX graphs for ONNX Runtime, checked against PyTorch.

The bag and topic flags defined here (:func:`add_bag_topic_arguments`) are shared with
``snapflow train``, so both commands read recordings the same way. A ``--config`` file is the
trainer's (sections with a ``data:`` section, or the ``snapflow_trainer`` ROS parameter file);
flags override it. Exit codes: 0 done, 1 the exported graphs do not match PyTorch (or the onnx
extra is missing), 2 bad input (one line naming the file, topic or checkpoint; nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snapflow_ros.cli.exit_codes import EXIT_FAILED, EXIT_OK
from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.config import ACTION_TYPE_CHOICES


def _joint_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated joint names, got {text!r}")
    return names


def add_bag_topic_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--bags``, ``--config`` and the topic flags that fill a BagTopicsConfig."""
    group = parser.add_argument_group("recordings and topics (override --config)")
    group.add_argument("--bags", nargs="+", action="extend", metavar="PATH",
                       help="rosbag2 recordings: bag directories, .mcap / .db3 files or folders "
                            "holding them")
    group.add_argument("--config", metavar="FILE",
                       help="YAML config: sections (data:, train:, policy:) or the "
                            "snapflow_trainer ROS parameter file (config/train.yaml)")
    group.add_argument("--camera-topic", action="append", dest="camera_topics", metavar="T",
                       help="camera topic (sensor_msgs/Image or CompressedImage); repeat for "
                            "several cameras (replaces the config's cameras)")
    group.add_argument("--camera-key", action="append", dest="camera_keys", metavar="K",
                       help="camera name the model uses, one per --camera-topic, in order "
                            "(default: 'top' for one camera, else from each topic)")
    group.add_argument("--state-topic", metavar="T", help="sensor_msgs/JointState state topic")
    group.add_argument("--joint-names", type=_joint_list, metavar="A,B,..",
                       help="state joints to use, in this order (default: all)")
    group.add_argument("--action-topic", metavar="T", help="action (command) topic")
    group.add_argument("--action-type", choices=ACTION_TYPE_CHOICES,
                       help="action message type of --action-topic (default auto: the type "
                            "the bag records; an explicit one must match it)")
    group.add_argument("--environment-state-topics", nargs="+", action="extend",
                       metavar="T", help="object pose topics (PoseStamped, PoseArray or "
                                         "Float64MultiArray) for observation.environment_state, "
                                         "in this order")
    group.add_argument("--rate-hz", type=float, metavar="F",
                       help="control rate: samples per second on the resampled grid")
    group.add_argument("--cache-dir", metavar="DIR",
                       help="keep decoded episodes here so that a rerun skips decoding")


def merge_bag_topic_flags(data: dict, args: argparse.Namespace) -> dict:
    """``data`` (a raw BagTopicsConfig mapping) with the topic flags of ``args`` applied."""
    data = dict(data)
    if args.camera_topics:
        data["camera_topics"] = list(args.camera_topics)
        # The config's keys named the config's cameras, not these.
        data.pop("camera_keys", None)
    if args.camera_keys:
        data["camera_keys"] = list(args.camera_keys)
    if getattr(args, "environment_state_topics", None):
        data["environment_state_topics"] = list(args.environment_state_topics)
    for flag, key in (("state_topic", "state_topic"), ("joint_names", "joint_names"),
                      ("action_topic", "action_topic"), ("action_type", "action_type"),
                      ("rate_hz", "rate_hz")):
        value = getattr(args, flag)
        if value is not None:
            data[key] = value
    return data


def read_config_sections(args: argparse.Namespace) -> dict:
    """The raw job sections of ``--config`` (empty sections without one)."""
    from snapflow_ros.training.train_job import read_train_job_yaml

    if args.config:
        return read_train_job_yaml(args.config)
    return {"data": {}, "train": {}, "policy": {}}


def add_arguments_export_lerobot(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow export-lerobot``."""
    add_bag_topic_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="dataset folder to create (must not exist unless --overwrite)")
    parser.add_argument("--repo-id", required=True, metavar="NAME",
                        help="dataset name recorded in it, e.g. my_lab/pick_cube")
    parser.add_argument("--fps", type=int, metavar="N",
                        help="frames per second (default: --rate-hz, which must be whole)")
    parser.add_argument("--robot-type", metavar="NAME", help="robot type recorded in the dataset")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_export_lerobot(args: argparse.Namespace) -> int:
    """Export; 0 on success (bad input raises ConfigError / BagError naming the file or topic)."""
    from snapflow_ros.config_fields import config_from_dict
    from snapflow_ros.data.bag_reader import BagError
    from snapflow_ros.data.config import BagTopicsConfig

    sections = read_config_sections(args)
    data = config_from_dict(BagTopicsConfig, merge_bag_topic_flags(sections["data"], args),
                            where="data.")
    bags = list(args.bags or sections.get("bags") or [])
    if not bags:
        raise ConfigError("no bags given: pass --bags PATH ... (or bags: in --config)")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} exists: choose another --out or pass --overwrite")
    if args.fps is not None and args.fps < 1:
        raise ConfigError(f"--fps {args.fps}: must be >= 1")
    from snapflow_ros.data.episodes import load_episodes
    from snapflow_ros.data.lerobot_export import export_lerobot_dataset

    try:
        episodes, summary = load_episodes(bags, data, progress=not args.no_progress,
                                          cache_dir=args.cache_dir or sections.get("cache_dir")
                                          or None)
        print(summary.format())
        path = export_lerobot_dataset(episodes, out, args.repo_id, fps=args.fps,
                                      robot_type=args.robot_type,
                                      default_task=data.default_task, overwrite=args.overwrite)
    except ValueError as exc:
        if isinstance(exc, (BagError, ConfigError)):
            raise
        # The exporter's own checks (e.g. a rate that is not whole Hz) are bad input too.
        raise ConfigError(f"cannot export: {exc}") from exc
    frames = sum(len(e) for e in episodes)
    print(f"wrote {len(episodes)} episodes, {frames} frames to {path}")
    return EXIT_OK


ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript", "tokenizers")
"""What ``snapflow export onnx`` needs beyond torch: the ``onnx`` extra of setup.py."""


def _batch_size(text: str) -> int:
    if text == "dynamic":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a batch size >= 1 or 'dynamic', got {text!r}")
    return value


def add_arguments_export(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow export FORMAT`` (``onnx``)."""
    formats = parser.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    onnx = formats.add_parser(
        "onnx", help="a checkpoint (compact, SmolVLA, PI0) as ONNX graphs (1-NFE chunk, k-step "
                     "pieces) with a manifest",
        description="Export a checkpoint as ONNX graphs: the 1-NFE chunk (noise an input) and "
                    "the prefix / expert / actions pieces for k steps, with manifest.json. "
                    "ONNX Runtime is checked against PyTorch on the same inputs: a float32 error "
                    "above --tolerance exits 1.")
    onnx.add_argument("--checkpoint", required=True, metavar="DIR",
                      help="checkpoint directory, or a training run directory (its latest)")
    onnx.add_argument("--out", required=True, metavar="DIR",
                      help="export folder to create (must not exist unless --overwrite)")
    onnx.add_argument("--batch", type=_batch_size, default=1, metavar="N|dynamic",
                      help="batch size of the graphs (default 1), or 'dynamic'")
    onnx.add_argument("--opset", type=int, default=18, metavar="N", help="ONNX opset (18-23)")
    onnx.add_argument("--quantize", choices=("none", "dynamic"), default="none",
                      help="also write int8 graphs (dynamic: int8 MatMul / Gemm weights); "
                           "their error is printed and recorded, never a failure")
    onnx.add_argument("--tolerance", type=float, default=1e-4, metavar="F",
                      help="float32 round-trip tolerance as a fraction of the action range "
                           "(default 1e-4)")
    onnx.add_argument("--check-steps", type=int, default=4, metavar="K",
                      help="sampler steps of the k-step round-trip check (default 4)")
    onnx.add_argument("--external-data", choices=("auto", "always", "never"), default="auto",
                      help="weights in <graph>.onnx.data beside each graph (auto: above 1.5 GiB)")
    onnx.add_argument("--task", default="", metavar="TEXT",
                      help="VLAs: SmolVLA / PI0: the instruction baked into the graphs; PI05 "
                           "(prompt tokenised at run time): the default task of the runner "
                           "(default: the policy's default task)")
    onnx.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run_export(args: argparse.Namespace) -> int:
    """Run ``snapflow export onnx``; 0 when the graphs match PyTorch, 1 when they do not."""
    import importlib.util

    missing = [name for name in ONNX_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: snapflow export onnx needs {', '.join(missing)}: install the onnx extra "
              "(pip install -e '.[onnx]')", file=sys.stderr)
        return EXIT_FAILED
    from snapflow_ros.config_fields import config_from_dict
    from snapflow_ros.export.onnx_export import OnnxExportConfig, export_onnx, format_round_trip

    config = config_from_dict(OnnxExportConfig, {
        "batch_size": args.batch, "opset": args.opset, "quantize": args.quantize,
        "tolerance_of_range": args.tolerance, "check_steps": args.check_steps,
        "task": args.task, "external_data": args.external_data}, where="--")
    manifest = export_onnx(args.checkpoint, args.out, config, overwrite=args.overwrite)
    print(format_round_trip(manifest))
    print(f"wrote {args.out} ({', '.join(sorted(manifest['graphs']))} graphs"
          + (", int8 too" if "int8" in manifest["round_trip"] else "") + ")")
    if not manifest["round_trip"]["float32"]["passed"]:
        print("error: the float32 graphs do not match PyTorch within the tolerance (the "
              "folder is kept for inspection; runners refuse it)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
