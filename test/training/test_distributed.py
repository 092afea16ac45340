# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training on two processes (torchrun, gloo on the CPU) against one process on the same batch.

Two torchrun processes of 4 samples each must train exactly as one process of 8: the same loss
curve and, within float tolerance, the same weights, in the teacher stage and in the snapflow
stage (frozen prefix, no gradient sync for it). For the comparison to be exact the runs use no
dropout and no image shifts, and the objective's noise and times come from one generator that
every process holds (``torchrun_job.SharedDraws``: each draw is made for the global batch and
each rank takes its rows), so the two-process global batch is the one-process batch. (A real
run draws per rank, seeded ``seed + rank``: the same loss in expectation, other samples.) The
snapflow run uses ``alpha = 0``, since a fractional split is made per rank, not over the global
batch. Checkpoints are written once, by rank 0, and a two-process run resumed from its step-2
checkpoint ends with the uninterrupted run's weights. The runs keep the compact policy's default
weight EMA: every rank averages the same synchronised weights, so the averages compare too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_task import ReachDataset
from torchrun_job import DRAWS_FILE, run_spec

from snapflow_ros.policies.checkpoint import load_policy, load_train_state
from snapflow_ros.training.distributed import DistributedRun
from snapflow_ros.training.trainer import collate_samples

JOB_SCRIPT = Path(__file__).with_name("torchrun_job.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(spec: dict, path: Path, processes: int = 2) -> None:
    path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
               str(processes), "--master_addr", "127.0.0.1", "--master_port",
               str(_free_port()), "--monitor_interval", "0.2", str(JOB_SCRIPT), str(path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-12000:]


def _losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_policy(run_dir).state_dict()


def _differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    assert a.keys() == b.keys()
    return {k: float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel()}


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(_differences(a, b).values())


def _velocity(policy) -> list[float]:
    """The policy's average velocity ``F(x, s, t)`` on fixed observations and noise."""
    batch = collate_samples([ReachDataset(4, seed=5)[i] for i in range(4)])
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, policy.chunk_size, policy.action_dim, generator=generator)
    s, t = torch.full((4,), 0.25), torch.full((4,), 0.75)
    with torch.no_grad():
        return policy.velocity(x, s, t, policy.encode(batch)).flatten().tolist()


def _spec(root: Path, runs: list[dict]) -> dict:
    return {"samples": 48, "batch_size": 8, "results": str(root / "results"), "runs": runs}


def _runs(root: Path) -> list[dict]:
    return [{"name": "teacher", "stage": "teacher", "steps": 4, "checkpoint_every": 2,
             "out_dir": str(root / "teacher")},
            {"name": "snapflow", "stage": "snapflow", "steps": 2, "alpha": 0.0,
             "init": str(root / "teacher"), "out_dir": str(root / "snapflow")}]


@pytest.mark.slow
def test_two_processes_train_as_one_on_the_same_global_batch(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    one, two = tmp_path / "one", tmp_path / "two"
    run_spec(_spec(one, _runs(one)))
    _torchrun(_spec(two, _runs(two)), tmp_path / "two.json")

    for name, steps in (("teacher", 4), ("snapflow", 2)):
        single, double = _losses(one / name), _losses(two / name)
        assert len(double) == steps  # one metrics line per step: rank 0 alone writes them
        assert double == pytest.approx(single, rel=1e-5, abs=1e-7)
        single_policy, double_policy = load_policy(one / name), load_policy(two / name)
        # Parameters whose gradient is zero in exact arithmetic (a bias just before a
        # GroupNorm, the key bias of attention) take AdamW steps from rounding noise, which
        # differs with the batch split: they agree within a small part of one step (lr 3e-3),
        # every other weight within float tolerance, and so do the policies' outputs.
        differences = _differences(single_policy.state_dict(), double_policy.state_dict())
        assert max(differences.values()) < 3e-4
        assert len([d for d in differences.values() if d > 1e-5]) <= 5  # those five biases
        assert _velocity(double_policy) == pytest.approx(_velocity(single_policy), abs=1e-5)
        ranks = [json.loads((two / "results" / f"{name}.rank{r}.json").read_text())
                 for r in (0, 1)]
        assert ranks[0] == ranks[1]  # every rank ends with the global loss and the checkpoint
        assert ranks[0]["step"] == steps

    # Written once, by rank 0: the two periodic checkpoints, nothing partial or duplicated.
    folders = sorted(p.name for p in (two / "teacher" / "checkpoints").iterdir())
    assert folders == ["step_00000002", "step_00000004"]
    state = load_train_state(two / "teacher")
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])
    # The compact default's weight EMA: the checkpoint holds the average every rank kept.
    assert state["ema"]["updates"] == 4
    saved = load_policy(two / "teacher")
    for name, average in state["ema"]["averages"].items():
        assert torch.equal(saved.get_parameter(name).detach(), average), name
    assert _max_difference(state["raw_parameters"], state["ema"]["averages"]) > 1e-4

    # The snapflow stage leaves the frozen prefix exactly as the teacher had it.
    teacher = load_policy(two / "teacher")
    student = load_policy(two / "snapflow")
    prefix_ids = {id(p) for p in teacher.prefix_parameters()}
    frozen = [n for n, p in teacher.named_parameters() if id(p) in prefix_ids]
    assert frozen
    for name in frozen:
        assert torch.equal(teacher.get_parameter(name), student.get_parameter(name)), name
    assert _max_difference(teacher.state_dict(), student.state_dict()) > 0  # the expert moved

    # Resume: the run rewound to its step-2 checkpoint, continued on two processes.
    rewound = tmp_path / "rewound"
    shutil.copytree(two / "teacher", rewound)
    shutil.rmtree(rewound / "checkpoints" / "step_00000004")
    (rewound / "latest").write_text("checkpoints/step_00000002\n")
    assert (rewound / "checkpoints" / "step_00000002" / DRAWS_FILE).is_file()
    resume = [{"name": "resumed", "stage": "teacher", "steps": 4, "checkpoint_every": 2,
               "resume": True, "out_dir": str(rewound)}]
    _torchrun(_spec(tmp_path / "again", resume), tmp_path / "again.json")
    assert _max_difference(_weights(rewound), _weights(two / "teacher")) < 1e-6
    assert _losses(rewound)[-2:] == pytest.approx(_losses(two / "teacher")[-2:], rel=1e-6)
    folders = sorted(p.name for p in (rewound / "checkpoints").iterdir())
    assert folders == ["step_00000002", "step_00000004"]


def test_one_process_without_torchrun_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    run = DistributedRun.from_environment()
    assert (run.rank, run.world_size, run.enabled, run.is_main) == (0, 1, False, True)
    module = torch.nn.Linear(2, 2)
    assert run.wrap(module, torch.device("cpu")) is module
    assert run.mean({"loss": 2.0}, torch.device("cpu")) == {"loss": 2.0}
    assert run.gather("x") == ["x"] and run.from_main(3) == 3


def test_torchrun_variables_are_read_and_checked(monkeypatch):
    from snapflow_ros.config_fields import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    run = DistributedRun.from_environment()
    assert (run.rank, run.world_size, run.local_rank, run.is_main) == (3, 4, 1, False)
    with pytest.raises(ConfigError, match="every process on one GPU"):
        run.device("cuda:0")
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="outside WORLD_SIZE"):
        DistributedRun.from_environment()
    monkeypatch.delenv("LOCAL_RANK")
    with pytest.raises(ConfigError, match="LOCAL_RANK not set: start the processes with torchrun"):
        DistributedRun.from_environment()


def test_a_local_rank_past_the_gpu_count_is_named(monkeypatch):
    from snapflow_ros.config_fields import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    run = DistributedRun(rank=3, world_size=4, local_rank=1)
    assert run.device("auto") == torch.device("cuda:1")
    assert run.device("cuda") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="local rank 2 has no GPU: this machine has 2 CUDA"):
        DistributedRun(rank=2, world_size=4, local_rank=2).device("auto")
