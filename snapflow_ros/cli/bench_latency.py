# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bench latency``: the command line of the latency benchmark.

Flags -> :class:`~snapflow_ros.evaluation.latency_bench.LatencyBenchConfig` and variants, the
run (:func:`~snapflow_ros.evaluation.latency_bench.run_latency_benchmark`, with the ROS publish
stage of :mod:`snapflow_ros.nodes.harness.latency_publish`), and the markdown table on stdout,
``--markdown`` and ``--json`` files. What is measured is documented in
:mod:`snapflow_ros.evaluation.latency_bench`. Importing this module loads neither torch nor rclpy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from snapflow_ros.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK
from snapflow_ros.config_fields import ConfigError
from snapflow_ros.evaluation.latency_bench import (
    FRAME_PREPS,
    NAMED_POLICIES,
    SIZES,
    TRANSPORTS,
    BenchVariant,
    LatencyBenchConfig,
    markdown_table,
    parse_variant,
    run_latency_benchmark,
)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,4,10, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"step counts must be >= 1, got {text!r}")
    return values


def add_arguments_latency(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow bench latency``."""
    source = parser.add_argument_group("model")
    source.add_argument("--checkpoint", default="", help="checkpoint or run directory")
    source.add_argument("--policy", choices=NAMED_POLICIES, default="compact",
                        help="named architecture with random weights when no --checkpoint "
                             "(compact: the demo configuration)")
    source.add_argument("--size", choices=SIZES, default="real",
                        help="VLA dimensions (default real)")
    source.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    source.add_argument("--weights-dtype", choices=("float32", "bfloat16"), default=None,
                        help="VLA weights (default: bfloat16 on CUDA, float32 on CPU)")
    work = parser.add_argument_group("workload")
    work.add_argument("--steps", type=_int_list, default=(1, 2, 4, 10), metavar="1,2,4,10")
    work.add_argument("--mode", choices=("jump", "euler"), default="jump")
    work.add_argument("--repeats", type=int, default=50)
    work.add_argument("--warmup", type=int, default=5)
    work.add_argument("--camera-size", default="", metavar="HxW",
                      help="camera frame size (default: the model's input size)")
    work.add_argument("--transport", choices=TRANSPORTS, default="raw")
    work.add_argument("--frame-prep", choices=FRAME_PREPS, default="arrival",
                      help="decode + resize on arrival (off the inference path, default) or "
                           "on the inference thread (counted in e2e)")
    work.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    work.add_argument("--no-publish", action="store_true",
                      help="skip the ROS publish stage even where rclpy is installed")
    speed = parser.add_argument_group("speed options (one variant; --variant for several)")
    speed.add_argument("--accelerate", default="none",
                       help="none, compile, cuda_graph or compile_cuda_graph")
    speed.add_argument("--dtype", default="float32", help="float32 or bfloat16 (autocast)")
    speed.add_argument("--attention", default="model", help="model or sdpa")
    speed.add_argument("--prompt-bucket", type=int, default=0,
                       help="VLAs: trim prompt padding to a multiple of this many tokens")
    speed.add_argument("--variant", action="append", default=[], metavar="NAME:key=value,...",
                       help="a named set of options, repeatable, e.g. "
                            "graph:accelerate=cuda_graph,dtype=bfloat16 or naive:path=naive "
                            "(keys: path=fast|sampler|naive, threads, frame_prep, steps=1+10 "
                            "and the speed options; backend=onnxruntime runs the model exported "
                            "to ONNX, e.g. ort:backend=onnxruntime,threads=1, with "
                            "precision=float32|int8 and providers=cuda, tensorrt+cuda ... "
                            "(default: --device); backend=openvino runs the same graphs in "
                            "OpenVINO, e.g. ov:backend=openvino,threads=1 with "
                            "precision=float32|int8|bfloat16)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    out.add_argument("--markdown", type=Path, default=None, help="write the table here")


def _camera_size(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--camera-size must look like 480x640, got {text!r}") from None
    return height, width


def config_from_args(args: argparse.Namespace) -> tuple[LatencyBenchConfig, list[BenchVariant]]:
    """The benchmark config and variants of parsed ``snapflow bench latency`` arguments."""
    height, width = _camera_size(args.camera_size)
    weights_dtype = args.weights_dtype
    if weights_dtype is None:
        import torch

        cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        weights_dtype = "bfloat16" if cuda else "float32"
    config = LatencyBenchConfig(
        policy=args.policy, checkpoint=args.checkpoint, size=args.size, device=args.device,
        weights_dtype=weights_dtype, steps=tuple(args.steps), mode=args.mode,
        repeats=args.repeats, warmup=args.warmup, camera_height=height, camera_width=width,
        transport=args.transport, frame_prep=args.frame_prep, threads=args.threads,
        publish=not args.no_publish)
    if args.variant:
        variants = [parse_variant(text) for text in args.variant]
    else:
        variants = [BenchVariant("default", options={
            "accelerate": args.accelerate, "dtype": args.dtype, "attention": args.attention,
            "prompt_bucket": args.prompt_bucket})]
    return config, variants


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def run_latency(args: argparse.Namespace) -> int:
    """Run ``snapflow bench latency``: 0 done, 130 interrupted (bad input raises ConfigError).

    The ROS publish stage is timed where rclpy is installed (not with ``--no-publish``).
    """
    from snapflow_ros.nodes.harness.latency_publish import RosTrajectoryPublisher

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    config, variants = config_from_args(args)
    report = run_latency_benchmark(config, variants, log=log,
                                   publisher_factory=RosTrajectoryPublisher.create)
    report["command"] = list(getattr(args, "argv", sys.argv))
    table = markdown_table(report)
    print(table, end="", flush=True)
    if args.markdown is not None:
        _write(args.markdown, table)
    if args.json is not None:
        _write(args.json, json.dumps(report, indent=2, default=str) + "\n")
    return EXIT_INTERRUPTED if report.get("interrupted") else EXIT_OK
