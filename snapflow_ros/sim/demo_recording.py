# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Record scripted ALOHA demonstrations as rosbag2 recordings, one bag per episode.

Each bag holds what the robot publishes plus the commanded action, stamped on simulated time
(0 at the first observation, 20 ms per control step), so training reads a demonstration
exactly like a recording from the real robot:

===========================  ==================================  ===============================
topic                        type                                content
===========================  ==================================  ===============================
``/camera/image_raw``        sensor_msgs/msg/Image (rgb8)        observation before step t
``/joint_states``            sensor_msgs/msg/JointState          14 named positions (+ velocity)
``/joint_trajectory``        trajectory_msgs/msg/JointTrajectory one point: the command of step t
``/object_poses``            geometry_msgs/msg/PoseArray         object poses before step t (world)
``/task``                    std_msgs/msg/String                 task description, once at t = 0
``/episode/status``          std_msgs/msg/String                 JSON summary, once at the end
===========================  ==================================  ===============================

The summary (``/episode/status``) also names the scripted expert's ``strategy`` in a task with
several (``transfer_cube_obstacle``: ``front`` or ``back`` of the post, drawn from the seed).
``strategy="both"`` records every seed once per strategy (bags ``<task>_seedNNNNNN_<strategy>``):
the same initial scene with two valid demonstrations, which the offline evaluation finds as
frames with several recorded truths (same state and object poses at the same step).

Image, joint state, object poses and command of step t share the stamp ``t * 20 ms``; the
command's single point has ``time_from_start = 0`` (a streamed command: the sim robot node
executes it during step t, the one it is stamped with). Action t is the target of step t, from
observation t to t + 1 (docs/design.md, "Command timing"). Messages are serialised with
rosbags' own CDR serialiser for ROS 2 Jazzy / Kilted (identical type hashes for these types),
never with rclpy.

Seeds: training demonstrations use seeds from :data:`TRAIN_SEED_START` (0) upwards, closed-loop
evaluation uses seeds from :data:`EVAL_SEED_START` (100000) upwards, so no evaluation episode
starts from an object pose seen in training as long as fewer than 100000 demonstrations are
recorded.

CLI: ``python -m snapflow_ros.sim.demo_recording --task transfer_cube --episodes 50
--seed-start 0 --out DIR`` (``--strategy both`` for ``transfer_cube_obstacle``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from snapflow_ros.sim.aloha_env import (
    ALOHA_JOINT_NAMES,
    CAMERAS,
    CONTROL_PERIOD_S,
    TASK_DESCRIPTIONS,
    TASKS,
    AlohaSim,
    AlohaSimConfig,
    poses_in_ros_order,
)
from snapflow_ros.sim.scripted_expert import TASK_STRATEGIES, Demonstration, ScriptedExpert

# First seed of the training demonstrations; seeds [TRAIN_SEED_START, EVAL_SEED_START) train.
TRAIN_SEED_START = 0
# First seed of closed-loop evaluation episodes; disjoint from the training seeds.
EVAL_SEED_START = 100000

IMAGE_TOPIC = "/camera/image_raw"
JOINT_STATE_TOPIC = "/joint_states"
COMMAND_TOPIC = "/joint_trajectory"
OBJECT_POSES_TOPIC = "/object_poses"
TASK_TOPIC = "/task"
STATUS_TOPIC = "/episode/status"
BAG_TOPICS = {
    IMAGE_TOPIC: "sensor_msgs/msg/Image",
    JOINT_STATE_TOPIC: "sensor_msgs/msg/JointState",
    COMMAND_TOPIC: "trajectory_msgs/msg/JointTrajectory",
    OBJECT_POSES_TOPIC: "geometry_msgs/msg/PoseArray",
    TASK_TOPIC: "std_msgs/msg/String",
    STATUS_TOPIC: "std_msgs/msg/String",
}
STORAGES = ("sqlite3", "mcap")
STEP_NS = round(CONTROL_PERIOD_S * 1e9)
# "seeded": the expert draws the strategy from the seed; a strategy name forces it; "both":
# every strategy of the task, one episode each.
STRATEGY_CHOICES = ("seeded", *dict.fromkeys(s for ss in TASK_STRATEGIES.values() for s in ss),
                    "both")


@dataclasses.dataclass
class RecordingSummary:
    """What :func:`record_demonstrations` did: episodes tried, succeeded, bags kept, timing."""

    task: str
    attempted: int  # episodes (two per seed with strategy "both")
    succeeded_seeds: list[int]  # one entry per succeeded episode (a seed twice with "both")
    failed_seeds: list[int]
    bags: list[str]  # paths of the bags written
    seconds: float
    steps: int  # control steps simulated in the joint-space replays
    # seed -> the expert's strategy, for multimodal tasks (scripted_expert.TASK_STRATEGIES);
    # with strategy "both" every seed has all of them: see ``episodes``
    strategies: dict[int, str] = dataclasses.field(default_factory=dict)
    strategy: str = "seeded"  # how the strategies were chosen (STRATEGY_CHOICES)
    # every episode: {"seed", "strategy", "success", "bag" (path, or None when dropped)}
    episodes: list[dict] = dataclasses.field(default_factory=list)

    @property
    def success_rate(self) -> float:
        """Fraction of attempted episodes whose joint-space replay succeeded."""
        return len(self.succeeded_seeds) / max(self.attempted, 1)

    def to_dict(self) -> dict:
        """JSON-serialisable form, with the success rate and simulation speed."""
        data = dataclasses.asdict(self)
        data["success_rate"] = self.success_rate
        data["kept"] = len(self.bags)
        data["steps_per_second"] = self.steps / self.seconds if self.seconds > 0 else 0.0
        return data


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def bag_name(task: str, seed: int, strategy: str | None = None) -> str:
    """Directory name of the bag of one episode; ``strategy``: one forced (not drawn) strategy."""
    return f"{task}_seed{seed:06d}" + (f"_{strategy}" if strategy else "")


def episode_strategies(task: str, strategy: str = "seeded") -> list[str | None]:
    """The forced strategies of the episodes of one seed (None: drawn from the seed).

    Raises ValueError for a strategy the task does not have (any but "seeded" for a task with
    a single way).
    """
    if strategy not in STRATEGY_CHOICES:
        raise ValueError(f"strategy={strategy!r}: must be one of {', '.join(STRATEGY_CHOICES)}")
    if strategy == "seeded":
        return [None]
    available = TASK_STRATEGIES.get(task, ())
    if strategy == "both" and available:
        return list(available)
    if strategy not in available:
        raise ValueError(f"strategy={strategy!r}: {task} has "
                         f"{', '.join(available) or 'one way only'} (use seeded)")
    return [strategy]


def write_demonstration_bag(demo: Demonstration, path: str | Path, *, storage: str = "sqlite3",
                            camera_frame: str = "top") -> Path:
    """Write ``demo`` as one rosbag2 at ``path`` (a new directory); returns ``path``.

    ``/object_poses`` is left out when ``demo.object_poses`` is None.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise ValueError(f"storage={storage!r}: must be one of {', '.join(STORAGES)}")
    store = _typestore()
    types = store.types
    Time = types["builtin_interfaces/msg/Time"]
    Duration = types["builtin_interfaces/msg/Duration"]
    Header = types["std_msgs/msg/Header"]
    Image = types["sensor_msgs/msg/Image"]
    JointState = types["sensor_msgs/msg/JointState"]
    JointTrajectory = types["trajectory_msgs/msg/JointTrajectory"]
    JointTrajectoryPoint = types["trajectory_msgs/msg/JointTrajectoryPoint"]
    String = types["std_msgs/msg/String"]
    Pose = types["geometry_msgs/msg/Pose"]
    Point = types["geometry_msgs/msg/Point"]
    Quaternion = types["geometry_msgs/msg/Quaternion"]
    PoseArray = types["geometry_msgs/msg/PoseArray"]
    names = list(ALOHA_JOINT_NAMES)
    empty = np.zeros(0, dtype=np.float64)

    def header(stamp_ns: int, frame: str = "") -> object:
        return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame)

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    path = Path(path)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=store)
                 for topic, msgtype in BAG_TOPICS.items()
                 if topic != OBJECT_POSES_TOPIC or demo.object_poses is not None}

        def write(topic: str, stamp_ns: int, msg: object) -> None:
            writer.write(conns[topic], stamp_ns, store.serialize_cdr(msg, BAG_TOPICS[topic]))

        write(TASK_TOPIC, 0, String(data=TASK_DESCRIPTIONS[demo.task]))
        height, width = demo.images.shape[1:3]
        for step in range(demo.num_steps):
            stamp = step * STEP_NS
            write(IMAGE_TOPIC, stamp, Image(
                header=header(stamp, camera_frame), height=height, width=width, encoding="rgb8",
                is_bigendian=0, step=width * 3, data=demo.images[step].reshape(-1)))
            write(JOINT_STATE_TOPIC, stamp, JointState(
                header=header(stamp), name=names, position=demo.qpos[step].astype(np.float64),
                velocity=demo.qvel[step].astype(np.float64), effort=empty))
            if demo.object_poses is not None:
                poses = [Pose(position=Point(x=x, y=y, z=z),
                              orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))
                         for x, y, z, qx, qy, qz, qw
                         in poses_in_ros_order(demo.object_poses[step]).tolist()]
                write(OBJECT_POSES_TOPIC, stamp, PoseArray(header=header(stamp, "world"),
                                                           poses=poses))
            point = JointTrajectoryPoint(
                positions=demo.actions[step].astype(np.float64), velocities=empty,
                accelerations=empty, effort=empty, time_from_start=Duration(sec=0, nanosec=0))
            write(COMMAND_TOPIC, stamp, JointTrajectory(
                header=header(stamp), joint_names=names, points=[point]))
        status = {
            "task": demo.task, "seed": demo.seed, "step": demo.num_steps,
            "reward": float(demo.rewards[-1]) if demo.num_steps else 0.0,
            "max_reward": float(demo.rewards.max()) if demo.num_steps else 0.0,
            "success": bool(demo.success), "first_success_step": demo.first_success_step,
            "done": True,
        }
        if demo.strategy is not None:
            status["strategy"] = demo.strategy
        write(STATUS_TOPIC, demo.num_steps * STEP_NS, String(data=json.dumps(status)))
    return path


def record_demonstrations(task: str, seeds: Iterable[int], out_dir: str | Path,
                          image_size: int = 128, progress: bool = True, *,
                          keep_failed: bool = False, storage: str = "sqlite3",
                          overwrite: bool = False, camera: str = "top",
                          episode_steps: int = 400, strategy: str = "seeded",
                          ) -> RecordingSummary:
    """Script, replay and record episodes per seed; one bag per kept episode in ``out_dir``.

    ``strategy`` (:data:`STRATEGY_CHOICES`): "seeded" records one episode per seed with the
    strategy its seed draws; a strategy name forces it; "both" records one episode per strategy
    of the task. Only episodes whose joint-space replay succeeds are written unless
    ``keep_failed``. An existing bag of the same name raises :class:`FileExistsError` unless
    ``overwrite``.
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r}: must be one of {', '.join(TASKS)}")
    forced = episode_strategies(task, strategy)
    seeds = [int(s) for s in seeds]
    episodes = [(seed, forced_strategy) for seed in seeds for forced_strategy in forced]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        existing = [bag_name(task, s, f) for s, f in episodes
                    if (out_dir / bag_name(task, s, f)).exists()]
        if existing:
            raise FileExistsError(f"{out_dir} already has {existing[:3]}"
                                  f"{' ...' if len(existing) > 3 else ''} (use overwrite)")
    sim = AlohaSim(AlohaSimConfig(task=task, image_size=image_size, camera=camera,
                                  episode_steps=episode_steps))
    expert = ScriptedExpert(task, episode_steps=episode_steps)
    summary = RecordingSummary(task=task, attempted=0, succeeded_seeds=[], failed_seeds=[],
                               bags=[], seconds=0.0, steps=0, strategy=strategy)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(episodes), desc=f"demos {task}", unit="ep", file=sys.stderr)
    start = time.perf_counter()
    try:
        for seed, forced_strategy in episodes:
            demo = expert.replay(expert.plan(seed, forced_strategy), sim)
            summary.attempted += 1
            summary.steps += demo.num_steps
            (summary.succeeded_seeds if demo.success else summary.failed_seeds).append(seed)
            if demo.strategy is not None and len(forced) == 1:
                summary.strategies[seed] = demo.strategy
            path = None
            if demo.success or keep_failed:
                path = out_dir / bag_name(task, seed, forced_strategy)
                if path.exists():
                    shutil.rmtree(path)
                write_demonstration_bag(demo, path, storage=storage, camera_frame=camera)
                summary.bags.append(str(path))
            summary.episodes.append({"seed": seed, "strategy": demo.strategy,
                                     "success": bool(demo.success),
                                     "bag": None if path is None else str(path)})
            if bar is not None:
                bar.set_postfix(ok=len(summary.succeeded_seeds), failed=len(summary.failed_seeds))
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - start
    return summary


def main(argv: list[str] | None = None) -> int:
    """CLI: record scripted demonstrations; prints the summary as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m snapflow_ros.sim.demo_recording",
        description="Record scripted ALOHA sim demonstrations as rosbag2 (one bag per episode).")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--episodes", type=int, default=50, help="seeds to try (default 50)")
    parser.add_argument("--seed-start", type=int, default=TRAIN_SEED_START,
                        help=f"first seed (training: {TRAIN_SEED_START}; evaluation seeds start "
                             f"at {EVAL_SEED_START} and must not be used for training)")
    parser.add_argument("--out", required=True, help="output directory (one bag per episode)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--camera", choices=CAMERAS, default="top")
    parser.add_argument("--storage", choices=STORAGES, default="sqlite3")
    parser.add_argument("--keep-failed", action="store_true",
                        help="also write episodes whose replay did not succeed")
    parser.add_argument("--overwrite", action="store_true", help="replace existing bags")
    parser.add_argument("--strategy", choices=STRATEGY_CHOICES, default="seeded",
                        help="multimodal tasks (transfer_cube_obstacle): seeded (default) draws "
                             "the expert's way from the seed, front / back forces one, both "
                             "records every seed once per way (bags <name>_front, <name>_back)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    try:
        episode_strategies(args.task, args.strategy)
    except ValueError as exc:
        parser.error(f"--strategy: {exc}")
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    if seeds[-1] >= EVAL_SEED_START:
        print(f"warning: seeds {seeds[0]}..{seeds[-1]} overlap the evaluation seeds "
              f"(>= {EVAL_SEED_START})", file=sys.stderr)
    summary = record_demonstrations(
        args.task, seeds, args.out, args.image_size, progress=not args.no_progress,
        keep_failed=args.keep_failed, storage=args.storage, overwrite=args.overwrite,
        camera=args.camera, strategy=args.strategy)
    print(json.dumps(summary.to_dict(), indent=2))
    return 0 if summary.bags else 1


if __name__ == "__main__":
    sys.exit(main())
