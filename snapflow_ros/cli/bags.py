# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``snapflow bags info``: what is in rosbag2 recordings, as ``ros2 bag info`` shows it.

Plus the episodes training would cut from them and the ``snapflow train`` flags that read them.

Examples::

    snapflow bags info demos/
    snapflow bags info demos/episode_0 --set episode_marker_topic=/episode --json

Topic and splitting flags are the ones ``snapflow train`` takes (and ``--config``); topics not
given are chosen by message type. Exit codes: 0 done, 2 bad input (a missing path, not a bag,
a corrupt bag, a bad flag: one line).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shlex
import sys

from snapflow_ros.cli.exit_codes import EXIT_OK
from snapflow_ros.cli.export import _joint_list, merge_bag_topic_flags, read_config_sections
from snapflow_ros.config_fields import ConfigError
from snapflow_ros.data.config import ACTION_TYPE_CHOICES


def add_arguments_bags(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snapflow bags`` (one action: ``info``)."""
    actions = parser.add_subparsers(dest="bags_action", metavar="ACTION", required=True)
    info = actions.add_parser(
        "info", help="topics, types, counts, rates, duration, episodes and the train flags",
        description="Per bag: storage, duration, messages and each topic's type, count and "
                    "rate; the episodes as snapflow train would cut them; the snapflow train "
                    "flags that read these bags.")
    info.add_argument("paths", nargs="+", metavar="PATH",
                      help="bag directories, .mcap / .db3 files or folders holding them")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-episodes", action="store_true",
                      help="do not decode the bags to split episodes (index only, fast)")
    group = info.add_argument_group("topics and splitting, as for snapflow train (default: "
                                    "chosen by message type)")
    group.add_argument("--config", metavar="FILE", help="the train config (data: section)")
    group.add_argument("--camera-topic", action="append", dest="camera_topics", metavar="T",
                       help="camera topic; repeat for several cameras")
    group.add_argument("--camera-key", action="append", dest="camera_keys", metavar="K",
                       help="camera name, one per --camera-topic")
    group.add_argument("--state-topic", metavar="T", help="sensor_msgs/JointState state topic")
    group.add_argument("--joint-names", type=_joint_list, metavar="A,B,..",
                       help="state joints to use, in this order")
    group.add_argument("--action-topic", metavar="T", help="action (command) topic")
    group.add_argument("--action-type", choices=ACTION_TYPE_CHOICES,
                       help="override of the action type the bag records (default auto)")
    group.add_argument("--environment-state-topics", nargs="+", action="extend", metavar="T",
                       help="object pose topics for observation.environment_state")
    group.add_argument("--rate-hz", type=float, metavar="F", help="resampling rate (Hz)")
    group.add_argument("--set", action="append", default=[], dest="overrides",
                       metavar="KEY=VALUE",
                       help="a data setting, e.g. --set episode_marker_topic=/episode --set "
                            "split_on_gap_s=2 (repeatable)")


def _config_data(args: argparse.Namespace) -> dict:
    """The data settings given by ``--config``, the flags and ``--set`` (in that order)."""
    from snapflow_ros.config_loading import split_override
    from snapflow_ros.data.config import BagTopicsConfig

    data = merge_bag_topic_flags(read_config_sections(args)["data"] if args.config else {},
                                 args)
    fields = {f.name for f in dataclasses.fields(BagTopicsConfig)}
    for item in args.overrides:
        key, value = split_override(item)
        key = key.removeprefix("data.")
        if key not in fields:
            raise ConfigError(f"--set {key}: not a data setting (one of: "
                              f"{', '.join(sorted(fields))})")
        data[key] = value
    return data


def bags_report(args: argparse.Namespace) -> dict:
    """Everything ``snapflow bags info`` prints, as a JSON-serialisable mapping."""
    from snapflow_ros.config_fields import config_from_dict
    from snapflow_ros.data.bag_info import (
        inspect_bag,
        split_episodes,
        suggest_topics,
        train_flags,
    )
    from snapflow_ros.data.bag_reader import BagError, find_bags
    from snapflow_ros.data.config import BagTopicsConfig

    given = _config_data(args)
    config_from_dict(BagTopicsConfig, given, where="data.")  # a bad value given is bad input
    infos = [inspect_bag(bag) for bag in find_bags(args.paths)]
    suggestion = suggest_topics(infos)
    flags, notes = train_flags(given, suggestion, args.paths)
    if args.config:
        flags += ["--config", args.config]
    data = dict(given)
    for key, value in (("camera_topics", suggestion.camera_topics),
                       ("state_topic", suggestion.state_topic),
                       ("action_topic", suggestion.action_topic),
                       ("task_topic", suggestion.task_topic),
                       ("environment_state_topics", suggestion.environment_state_topics)):
        if value and key not in data:
            data[key] = value
    config = None
    if not args.no_episodes:
        missing = [key for key in ("camera_topics", "state_topic", "action_topic")
                   if not data.get(key)]
        if missing:
            notes.append(f"episodes not split: no {', '.join(missing)} (give its flag)")
        else:
            try:
                config = config_from_dict(BagTopicsConfig, data, where="data.")
            except ConfigError as exc:  # e.g. two suggested cameras with the same key
                notes.append(f"episodes not split: {exc}")
    for info in infos:
        if config is None:
            continue
        try:
            info.episodes, info.episode_notes = split_episodes(info.path, config)
        except BagError as exc:
            info.episode_notes = [exc.problem if exc.topic is None
                                  else f"topic '{exc.topic}': {exc.problem}"]
    return {
        "bags": [_bag_dict(info) for info in infos],
        "splitting": _splitting(config),
        "suggested": dataclasses.asdict(suggestion),
        "train_flags": flags,
        "train_command": shlex.join(["snapflow", "train", *flags]),
        "notes": notes,
    }


def _bag_dict(info) -> dict:
    data = dataclasses.asdict(info)
    data["path"] = str(info.path)
    return data


def _splitting(config) -> str:
    if config is None:
        return ""
    if config.episode_marker_topic:
        return f"on marker topic {config.episode_marker_topic}"
    if config.split_on_gap_s > 0:
        return f"where no message arrives for {config.split_on_gap_s:g} s"
    return "one episode per bag"


def _start_text(start_ns: int) -> str:
    stamp = datetime.datetime.fromtimestamp(start_ns / 1e9, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def format_report(report: dict) -> str:
    """The human-readable ``snapflow bags info`` output of :func:`bags_report`."""
    lines: list[str] = []
    for bag in report["bags"]:
        lines += [f"bag:       {bag['path']}",
                  f"storage:   {bag['storage']}",
                  f"duration:  {bag['duration_s']:.3f} s"
                  + (f" (start {_start_text(bag['start_ns'])})" if bag["message_count"] else ""),
                  f"messages:  {bag['message_count']}",
                  "topics:"]
        width = max((len(t["topic"]) for t in bag["topics"]), default=0)
        type_width = max((len(t["msgtype"]) for t in bag["topics"]), default=0)
        for topic in bag["topics"]:
            lines.append(f"  {topic['topic']:<{width}}  {topic['msgtype']:<{type_width}}  "
                         f"{topic['count']:>7d} msgs  {topic['rate_hz']:8.1f} Hz")
        if bag["episodes"] is not None:
            lines.append(f"episodes:  {len(bag['episodes'])} ({report['splitting']})")
            for episode in bag["episodes"]:
                task = f"  task {episode['task']!r}" if episode["task"] else ""
                lines.append(f"  #{episode['segment']}  {episode['steps']} steps  "
                             f"{episode['duration_s']:.2f} s{task}")
        for note in bag["episode_notes"]:
            lines.append(f"  {note}")
        lines.append("")
    lines += ["train with:", f"  {report['train_command']}"]
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def run_bags(args: argparse.Namespace) -> int:
    """Run ``snapflow bags info``: 0 done (bad input raises ConfigError / BagError)."""
    report = bags_report(args)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(format_report(report))
    return EXIT_OK
