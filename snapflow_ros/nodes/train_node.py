# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The training job as a ROS 2 node (``snapflow_trainer``): ``snapflow train`` driven by parameters.

Parameters: every field of :class:`~snapflow_ros.training.train_job.TrainJobConfig` (bags,
out_dir, policy_type, init_checkpoint, policy_overrides, ...), of
:class:`~snapflow_ros.data.config.BagTopicsConfig` (topics, joints, rate, image size),
of :class:`~snapflow_ros.training.config.TrainConfig` (stage, steps, batch_size, lr, ...) and of
:class:`TrainNodeConfig`; ``config/train.yaml`` documents them all. They are read once at start.

Interface (relative names, so the node can be namespaced and remapped):

- ``~/progress`` (std_msgs/String, JSON: step, total, loss, eta_s, samples_per_s, lr, stage),
  at most every ``progress_period_s``, and always for the first and the last step; transient
  local with a history of 10, so a subscriber that asks for it and matches late (a short run
  can be over before discovery ends) still gets the latest reports;
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): one status ``snapflow_trainer: training``,
  OK while reading bags / training / done, WARN when stopped early or bags were skipped, ERROR
  with the reason when the job failed (bad bag, missing topic, checkpoint mismatch...); key
  values step, total, loss, eta_s, samples_per_s, checkpoint; every ``diagnostics_period_s``;
- ``~/checkpoint`` (std_msgs/String, transient local: a late subscriber gets the latest): the
  directory of each checkpoint once it is complete;
- ``~/stop`` (std_srvs/Trigger): stop after writing a checkpoint at the next step.

Training runs in its own thread; subscriptions, timers and services in a SingleThreadedExecutor.
The process exits when the job ends (``exit_when_done``; exit code 0, 2 for bad input, 1 for
another failure), or stays up idle. Errors are logged and published, never a traceback crash.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String
from std_srvs.srv import Trigger

from snapflow_ros.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from snapflow_ros.config_fields import ConfigError, config_from_dict
from snapflow_ros.data.config import BagTopicsConfig
from snapflow_ros.nodes.node_process import stop_with_parent
from snapflow_ros.nodes.ros_parameters import (
    config_from_parameters,
    declare_config_parameters,
    parameter_values,
)
from snapflow_ros.training.config import RECIPE_FIELDS, TrainConfig
from snapflow_ros.training.train_job import (
    NODE_NAME,
    TrainJobConfig,
    TrainNodeConfig,
    render_train_params_yaml,
)

# A checkpoint or final status published just before exit needs a moment to reach subscribers.
_LINGER_S = 1.0
# How long SIGINT waits for the step in progress and the final checkpoint.
_STOP_TIMEOUT_S = 120.0


PARAMETER_CONFIGS = (TrainJobConfig, BagTopicsConfig, TrainConfig, TrainNodeConfig)
"""Every config class whose fields are this node's parameters."""


def render_params_yaml() -> str:
    """The documented parameter file of this node (the content of ``config/train.yaml``)."""
    header = (
        "Parameters of the snapflow_trainer node (python -m snapflow_ros.nodes.train_node\n"
        "--ros-args --params-file config/train.yaml -p bags:=[demos/] -p out_dir:=runs/teacher).\n"
        "The same file configures the command line: snapflow train --config config/train.yaml.\n"
        "Empty lists and unset values are commented out (a ROS parameter file holds neither).\n"
        "Unset recipe values take the policy's default\n"
        "(snapflow_ros.training.config.TRAINING_DEFAULTS):\n"
        f"{', '.join(RECIPE_FIELDS)}.\n"
        "Generated from the config classes by snapflow_ros.nodes.train_node.render_params_yaml.")
    return render_train_params_yaml(PARAMETER_CONFIGS[3:], header=header)


class _NodeLogHandler(logging.Handler):
    """Forwards the training code's Python log records to the node's ROS logger."""

    def __init__(self, node: Node) -> None:
        super().__init__(logging.INFO)
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            self._logger.error(message)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(message)
        else:
            self._logger.info(message)


class TrainNode(Node):
    """Runs :func:`~snapflow_ros.training.train_job.run_train_job` in a thread and reports it."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.exit_code = EXIT_OK
        self.node_config = TrainNodeConfig()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = {"level": DiagnosticStatus.OK, "message": "starting", "step": 0,
                        "total": 0, "loss": math.nan, "eta_s": math.nan,
                        "samples_per_s": math.nan, "checkpoint": ""}
        self._last_progress = -math.inf
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        recent = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._progress_pub = self.create_publisher(String, "~/progress", recent)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._checkpoint_pub = self.create_publisher(String, "~/checkpoint", latched)
        self._stop_service = self.create_service(Trigger, "~/stop", self._on_stop)
        self._log_handler = _NodeLogHandler(self)
        self._job: TrainJobConfig | None = None
        try:
            for cls in PARAMETER_CONFIGS:
                declare_config_parameters(self, cls)
            self.node_config = config_from_parameters(self, TrainNodeConfig)
            self._job = self._job_from_parameters()
        except ConfigError as exc:
            self._fail(f"bad parameters: {exc}", EXIT_BAD_INPUT)
        except Exception as exc:  # rclpy rejects a parameter of the wrong type or range
            self._fail(f"bad parameters: {type(exc).__name__}: {exc}", EXIT_BAD_INPUT)
        self._timer = self.create_timer(self.node_config.diagnostics_period_s,
                                        self._publish_diagnostics)

    # -- configuration --------------------------------------------------------------------------

    def _job_from_parameters(self) -> TrainJobConfig:
        """The job from the parameters; derived data fields follow the parameters given."""
        data = config_from_parameters(self, BagTopicsConfig)
        train = config_from_parameters(self, TrainConfig)
        return config_from_dict(TrainJobConfig, {**parameter_values(self, TrainJobConfig),
                                                 "data": data, "train": train})

    # -- the training thread --------------------------------------------------------------------

    def start(self) -> None:
        """Start the training thread (nothing to do if the parameters were rejected)."""
        if self._job is None:
            self._finished.set()
            return
        self._thread = threading.Thread(target=self._train, name="snapflow_training",
                                        daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        """True once the job has ended (done, stopped or failed)."""
        return self._finished.is_set()

    def request_stop(self) -> None:
        """Ask the job to stop after writing a checkpoint."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the training thread."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _train(self) -> None:
        from snapflow_ros.data.bag_reader import BagError
        from snapflow_ros.training.train_job import run_train_job

        package_logger = logging.getLogger("snapflow_ros")
        package_logger.addHandler(self._log_handler)
        package_logger.setLevel(logging.INFO)
        job = self._job
        self._set_status(DiagnosticStatus.OK, f"reading {len(job.bags)} bag path(s)",
                         total=job.train.steps)
        self.get_logger().info(f"training {job.train.stage} on {list(job.bags)} into "
                               f"{job.out_dir}")
        try:
            result = run_train_job(
                job, resume=self.node_config.resume, progress=False,
                on_progress=self._on_progress, on_checkpoint=self._on_checkpoint,
                should_stop=self._stop.is_set, log=self._log_line,
                command=f"train_node {self.get_fully_qualified_name()} (parameters: "
                        f"{Path(job.out_dir) / 'train_job.yaml'})")
        except (BagError, ConfigError) as exc:
            self._fail(str(exc), EXIT_BAD_INPUT)
        except Exception as exc:  # reported on /diagnostics; the node must not crash
            self.get_logger().error(f"training failed: {type(exc).__name__}: {exc}")
            self._fail(f"training failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
        else:
            summary = result.summary
            skipped = len(summary.skipped_bags) + len(summary.skipped_episodes)
            step = result.training.step
            if result.stopped_early:
                level, message = DiagnosticStatus.WARN, f"stopped on request at step {step}"
            elif skipped:
                level, message = DiagnosticStatus.WARN, (
                    f"done at step {step}; {skipped} bag(s) / episode(s) skipped")
            else:
                level, message = DiagnosticStatus.OK, f"done at step {step}"
            self._set_status(level, message, step=step,
                             checkpoint=str(result.checkpoint or ""))
            self.get_logger().info(f"{message}: {result.checkpoint}")
        finally:
            package_logger.removeHandler(self._log_handler)
            self._finished.set()
            self._publish_diagnostics()

    def _log_line(self, text: str) -> None:
        for line in text.splitlines():
            self.get_logger().info(line)

    def _on_progress(self, report: dict) -> None:
        step, total = int(report["step"]), int(report["steps"])
        self._set_status(DiagnosticStatus.OK, f"training step {step}/{total}", step=step,
                         total=total, loss=float(report["loss"]),
                         eta_s=float(report["eta_s"]),
                         samples_per_s=float(report["samples_per_s"]))
        now = time.monotonic()
        if step > 1 and step < total and now - self._last_progress < \
                self.node_config.progress_period_s:
            return
        self._last_progress = now
        message = {"step": step, "total": total, "loss": float(report["loss"]),
                   "eta_s": float(report["eta_s"]),
                   "samples_per_s": float(report["samples_per_s"]),
                   "lr": float(report["lr"]), "stage": self._job.train.stage}
        self._publish(self._progress_pub, String(data=json.dumps(message)))

    def _on_checkpoint(self, path: Path) -> None:
        self._set_status(None, None, checkpoint=str(path))
        self._publish(self._checkpoint_pub, String(data=str(Path(path).resolve())))

    def _publish(self, publisher, message) -> None:
        # After SIGINT the context is shut down while the thread writes its last checkpoint.
        if not rclpy.ok(context=self.context):
            return
        try:
            publisher.publish(message)
        except Exception as exc:  # publishing races the shutdown of the context
            self.get_logger().debug(f"not published: {exc}")

    # -- status ---------------------------------------------------------------------------------

    def _fail(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        self._set_status(DiagnosticStatus.ERROR, message)
        self.get_logger().error(message)

    def _set_status(self, level, message, **values) -> None:
        with self._lock:
            if level is not None:
                self._status["level"] = level
            if message is not None:
                self._status["message"] = message
            self._status.update(values)

    def _publish_diagnostics(self) -> None:
        with self._lock:
            status = dict(self._status)
        values = [KeyValue(key=key, value=_format_value(status[key]))
                  for key in ("step", "total", "loss", "eta_s", "samples_per_s", "checkpoint")]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [DiagnosticStatus(level=status["level"],
                                         name=f"{self.get_name()}: training",
                                         message=status["message"], hardware_id=self.get_name(),
                                         values=values)]
        self._publish(self._diagnostics_pub, array)

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.finished:
            response.success = False
            response.message = "not training: the job has already ended"
            return response
        self.request_stop()
        response.success = True
        response.message = "stopping after writing a checkpoint at the next step"
        self.get_logger().info("stop requested")
        return response


def _format_value(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _spin_until_finished(executor: SingleThreadedExecutor, node: TrainNode,
                         timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not node.finished and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    deadline = time.monotonic() + _LINGER_S
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)


def main(args: list[str] | None = None) -> int:
    """Run the trainer node; returns 0 when done, 2 on bad input, 1 on another failure.

    SIGINT stops the job after a final checkpoint, which is still published before the process
    exits; a second SIGINT exits at once.
    """
    stop_with_parent()
    # Our own SIGINT handling: rclpy's would shut the context down before the final checkpoint
    # could be announced on ~/checkpoint and /diagnostics.
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    # Explicitly: a process started in the background of a shell inherits an ignored SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = TrainNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    node.start()
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
            if node.finished and node.node_config.exit_when_done:
                _spin_until_finished(executor, node, 0.0)
                break
    except KeyboardInterrupt:
        node.get_logger().info("interrupted: stopping after a final checkpoint "
                               "(interrupt again to exit at once)")
        node.request_stop()
        try:
            _spin_until_finished(executor, node, _STOP_TIMEOUT_S)
        except KeyboardInterrupt:
            pass
    except ExternalShutdownException:
        pass
    finally:
        node.request_stop()
        node.join(timeout=1.0)
        rclpy.try_shutdown()
        executor.shutdown()
        node.destroy_node()
    return node.exit_code


if __name__ == "__main__":
    sys.exit(main())
