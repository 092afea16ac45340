# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The accelerated inference path gives the plain sampler's actions, only faster.

CPU tests cover everything but the CUDA graphs themselves; the static-buffer bookkeeping of the
graph path is checked here with a stand-in whose "replay" reruns the captured function into the
same output buffers. The CUDA tests run where a GPU is present.
"""

import numpy as np
import pytest
import torch
from torch.utils import _pytree

from snapflow_ros.config_fields import ConfigError
from snapflow_ros.policies.base import RobotInterface
from snapflow_ros.policies.checkpoint import export_checkpoint
from snapflow_ros.policies.compact.configuration_compact import CompactPolicyConfig
from snapflow_ros.policies.compact.modeling_compact import CompactFlowPolicy
from snapflow_ros.policies.normalization import NormalizationStats
from snapflow_ros.policies.registry import new_policy
from snapflow_ros.runtime.fast_inference import (
    DeviceConstants,
    FastInference,
    FastInferenceConfig,
    sampling_grid,
    trim_prompt_padding,
)
from snapflow_ros.snapflow.sampler import predict_action_chunk

ROBOT = RobotInterface(joint_names=("shoulder", "elbow", "wrist"), camera_keys=("top",),
                       image_height=16, image_width=16)
CHUNK = 6
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# bf16 keeps 8 bits of mantissa: through a few layers, actions move by well under 5% of their
# spread (measured ~1%); the documentation promises "about 1%".
BF16_BOUND = 0.05


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_policy(seed=0):
    torch.manual_seed(seed)
    config = CompactPolicyConfig(chunk_size=CHUNK, cnn_channels=(4, 8), hidden_dim=16,
                                 num_layers=2, num_heads=2, num_keypoints=2,
                                 time_encoding_dim=8, target_time_hidden_dim=8)
    rng = np.random.default_rng(seed)
    stats = NormalizationStats.from_arrays(rng.normal(size=(20, 3)), rng.normal(1, 0.5, (20, 3)))
    policy = CompactFlowPolicy(config, ROBOT, stats)
    with torch.no_grad():  # trained-looking weights: the output depends on every input
        for parameter in policy.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.3)
    return policy.eval()


def batch(seed=0, rows=1):
    generator = torch.Generator().manual_seed(seed)
    return {"images": {"top": torch.randint(0, 256, (rows, 3, 16, 16), dtype=torch.uint8,
                                            generator=generator)},
            "state": torch.randn(rows, 3, generator=generator), "task": ["pick"] * rows}


def noise(seed=0, rows=1):
    return torch.randn(rows, CHUNK, 3, generator=torch.Generator().manual_seed(seed))


class ReplayByRerun:
    """Stand-in for a CUDA graph: replay reruns the function into the captured output buffers."""

    def __init__(self, function, output):
        self.function, self.output, self.replays = function, output, 0

    def replay(self):
        self.replays += 1
        fresh = self.function()
        for target, source in zip(_pytree.tree_leaves(self.output), _pytree.tree_leaves(fresh)):
            target.copy_(source)


class EmulatedGraphs(FastInference):
    """FastInference's graph bookkeeping on the CPU, with :class:`ReplayByRerun` as the graph."""

    def __init__(self, policy, fail=(), **options):
        super().__init__(policy)
        self.config = FastInferenceConfig(accelerate="cuda_graph", **options)
        self.fail, self.captured = set(fail), []

    def _capture(self, function):
        kind = "sampler" if "_sample_eager" in function.__code__.co_names else "prefix"
        if kind in self.fail:
            raise RuntimeError(f"{kind} refused by the test")
        with torch.inference_mode():
            output = function()
        graph = ReplayByRerun(function, output)
        self.captured.append((kind, graph))
        return graph, output

    def _after_failed_capture(self):
        pass


def test_the_grid_is_the_plain_samplers_grid():
    assert sampling_grid(1, "jump") == [(1.0, 0.0, 1.0)]
    assert sampling_grid(2, "euler") == [(1.0, 1.0, 0.5), (0.5, 0.5, 0.5)]
    jump = sampling_grid(4, "jump")
    assert [s for _, s, _ in jump] == [0.75, 0.5, 0.25, 0.0]
    assert sum(dt for _, _, dt in jump) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        sampling_grid(0, "jump")
    with pytest.raises(ValueError):
        sampling_grid(1, "heun")


@pytest.mark.parametrize(("steps", "mode"), [(1, "jump"), (2, "euler"), (4, "jump"),
                                             (10, "euler")])
def test_default_options_give_the_plain_samplers_actions_bit_for_bit(steps, mode):
    policy = tiny_policy()
    fast = FastInference(policy)
    expected = predict_action_chunk(policy, batch(), num_steps=steps, mode=mode, noise=noise())
    actual = fast.predict(batch(), num_steps=steps, mode=mode, noise=noise())
    assert torch.equal(actual, expected)
    seeded = predict_action_chunk(policy, batch(), num_steps=steps, mode=mode,
                                  generator=torch.Generator().manual_seed(7))
    assert torch.equal(fast.predict(batch(), num_steps=steps, mode=mode,
                                    generator=torch.Generator().manual_seed(7)), seeded)


def test_stages_compose_to_predict():
    policy = tiny_policy()
    fast = FastInference(policy)
    context = fast.encode(fast.prepare(batch()))
    x = fast.sample(context, noise(), 2, "jump")
    assert x.shape == (1, CHUNK, 3)
    assert torch.equal(fast.to_robot_actions(x),
                       fast.predict(batch(), num_steps=2, mode="jump", noise=noise()))


def test_bfloat16_changes_actions_only_within_the_documented_bound():
    policy = tiny_policy()
    expected = predict_action_chunk(policy, batch(), num_steps=1, noise=noise())
    actual = FastInference(policy, FastInferenceConfig(dtype="bfloat16")).predict(
        batch(), num_steps=1, noise=noise())
    deviation = (actual - expected).abs().max() / expected.std()
    assert 0 < deviation < BF16_BOUND  # it does change them, by little


def test_cuda_graphs_are_refused_without_a_gpu_by_name():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="cuda_graph needs a CUDA device"):
        FastInference(tiny_policy(), FastInferenceConfig(accelerate="cuda_graph"))


def test_config_refuses_compiled_graphs_inside_our_graphs():
    with pytest.raises(ConfigError, match="reduce-overhead"):
        FastInferenceConfig(accelerate="compile_cuda_graph", compile_mode="reduce-overhead")
    with pytest.raises(ConfigError):
        FastInferenceConfig(accelerate="tensorrt")


# -- the graph path's static buffers (emulated graphs) --------------------------------------------


def test_graph_path_gives_the_plain_actions_and_reuses_its_graphs_for_new_inputs():
    policy = tiny_policy()
    fast = EmulatedGraphs(policy)
    for seed in range(3):
        expected = predict_action_chunk(policy, batch(seed), num_steps=2, noise=noise(seed))
        actual = fast.predict(batch(seed), num_steps=2, noise=noise(seed))
        assert torch.allclose(actual, expected, atol=1e-6), seed
    kinds = [kind for kind, _ in fast.captured]
    assert kinds == ["prefix", "sampler"]  # captured once, replayed for every new observation
    assert all(graph.replays == 3 for _, graph in fast.captured)
    assert fast.status["graph_sets"][0] == {"prefix": "graph", "samplers": {"2xjump": "graph"},
                                            "notes": {}}


def test_graph_path_captures_one_sampler_per_step_count_and_one_set_per_shape():
    policy = tiny_policy()
    fast = EmulatedGraphs(policy, max_graphs=2)
    for steps in (1, 10):
        expected = predict_action_chunk(policy, batch(), num_steps=steps, noise=noise())
        assert torch.allclose(fast.predict(batch(), num_steps=steps, noise=noise()), expected,
                              atol=1e-6)
    two_rows = fast.predict(batch(rows=2), num_steps=1, noise=noise(rows=2))
    assert torch.allclose(two_rows, predict_action_chunk(
        policy, batch(rows=2), num_steps=1, noise=noise(rows=2)), atol=1e-6)
    assert [s["samplers"] for s in fast.status["graph_sets"]] == [
        {"1xjump": "graph", "10xjump": "graph"}, {"1xjump": "graph"}]
    fast.predict(batch(rows=3), num_steps=1, noise=noise(rows=3))
    assert len(fast.status["graph_sets"]) == 2  # the least recently used set was dropped


@pytest.mark.parametrize("failing", ["prefix", "sampler"])
def test_a_part_that_cannot_be_captured_runs_eagerly_and_says_why(failing):
    policy = tiny_policy()
    fast = EmulatedGraphs(policy, fail={failing})
    for seed in range(2):
        expected = predict_action_chunk(policy, batch(seed), num_steps=4, mode="euler",
                                        noise=noise(seed))
        actual = fast.predict(batch(seed), num_steps=4, mode="euler", noise=noise(seed))
        assert torch.allclose(actual, expected, atol=1e-6)
    graph_set = fast.status["graph_sets"][0]
    if failing == "prefix":
        assert graph_set["prefix"] == "eager" and "refused by the test" in graph_set["notes"][
            "prefix"]
    else:
        assert graph_set["samplers"] == {"4xeuler": "eager"}
        assert "refused by the test" in graph_set["notes"]["sampler 4xeuler"]


def test_sampling_from_a_context_of_another_origin_runs_eagerly():
    policy = tiny_policy()
    fast = EmulatedGraphs(policy)
    context = FastInference(policy).encode(fast.prepare(batch()))
    expected = predict_action_chunk(policy, batch(), num_steps=1, noise=noise())
    assert torch.allclose(fast.to_robot_actions(fast.sample(context, noise(), 1, "jump")),
                          expected, atol=1e-6)
    assert fast.captured == []


# -- host constants ----------------------------------------------------------------------------


def test_device_constants_serve_host_constants_from_a_cache_as_copies():
    constants = DeviceConstants("cpu")
    original = torch.tensor
    with constants.active():
        assert torch.tensor is not original
        first = torch.tensor([1, 0, 0], dtype=torch.bool, device="cpu")
        again = torch.tensor([1, 0, 0], dtype=torch.bool, device="cpu")
        scalar = torch.tensor(8 ** 0.5, dtype=torch.float32, device="cpu")
        ints = torch.tensor([1, 0, 0], device="cpu")  # another type: another constant
        plain = torch.tensor([4.0, 5.0])  # no device: passes through, not cached
    assert torch.tensor is original
    assert len(constants) == 3
    assert torch.equal(first, again) and first.dtype == torch.bool
    assert ints.dtype == torch.int64 and scalar.item() == pytest.approx(8 ** 0.5)
    first[0] = False  # callers get copies: the cache is never modified through them
    with constants.active():
        assert torch.tensor([1, 0, 0], dtype=torch.bool, device="cpu")[0]
    assert torch.equal(plain, original([4.0, 5.0]))


def test_prompt_padding_is_trimmed_to_a_bucket_and_only_padding_goes():
    tokens = torch.arange(2 * 40).reshape(2, 40)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, :9] = True
    mask[1, :13] = True
    processed = {"observation.language.tokens": tokens,
                 "observation.language.attention_mask": mask, "task": ["a", "b"]}
    trimmed = trim_prompt_padding(processed, 8)
    assert trimmed["observation.language.tokens"].shape == (2, 16)
    assert torch.equal(trimmed["observation.language.tokens"], tokens[:, :16])
    assert trimmed["observation.language.attention_mask"].sum() == mask.sum()
    assert trim_prompt_padding(processed, 0) is processed
    assert trim_prompt_padding(processed, 64) is processed  # nothing to gain
    assert trim_prompt_padding({"state": tokens}, 8) == {"state": tokens}


@pytest.fixture(scope="module")
def tiny_pi05(tmp_path_factory):
    pytest.importorskip("lerobot")
    from snapflow_ros.policies.lerobot_vla.offline_backbones import (
        TINY_PALIGEMMA_DIMS,
        train_tokenizer,
    )

    torch.manual_seed(0)
    robot = RobotInterface(joint_names=("a", "b", "c"), camera_keys=("cam",), image_height=32,
                           image_width=32)
    tokenizer = train_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    options = dict(tokenizer_path=str(tokenizer), image_size=32, chunk_size=CHUNK,
                   lerobot_overrides={"backbone_dims": TINY_PALIGEMMA_DIMS,
                                      "tokenizer_max_length": 96,
                                      "max_state_dim": 8, "max_action_dim": 8})
    policy = new_policy("pi05", options, robot, NormalizationStats.identity(3, 3))
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.05)
    return policy.eval()


def vla_batch():
    generator = torch.Generator().manual_seed(1)
    return {"images": {"cam": torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8,
                                            generator=generator)},
            "state": torch.randn(1, 3, generator=generator), "task": ["pick up the cube"]}


@pytest.mark.parametrize("options", [{"prompt_bucket": 16}, {"attention": "sdpa"}],
                         ids=["prompt_bucket", "sdpa"])
def test_vla_levers_change_actions_only_by_float_rounding(tiny_pi05, options):
    start = torch.randn(1, CHUNK, 8, generator=torch.Generator().manual_seed(2))
    expected = predict_action_chunk(tiny_pi05, vla_batch(), num_steps=2, noise=start)
    fast = FastInference(tiny_pi05, FastInferenceConfig(**options))
    if "prompt_bucket" in options:
        full = tiny_pi05.preprocess(vla_batch())["observation.language.tokens"].shape[-1]
        kept = fast.prepare(vla_batch())["observation.language.tokens"].shape[-1]
        assert kept % 16 == 0 and kept < full == 96
    actual = fast.predict(vla_batch(), num_steps=2, noise=start)
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compiled_expert_matches_within_float_tolerance():
    policy = tiny_policy()
    fast = FastInference(policy, FastInferenceConfig(accelerate="compile"))
    for steps in (1, 2):
        expected = predict_action_chunk(policy, batch(), num_steps=steps, noise=noise())
        actual = fast.predict(batch(), num_steps=steps, noise=noise())
        assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-5)


# -- the runner's options ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast_ckpt") / "policy"
    export_checkpoint(tiny_policy(), path, stage="snapflow", step=1)
    return path


class _Observation:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.images = {"top": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)}
        self.state = rng.normal(size=3)
        self.task = "pick"


def test_runner_fast_path_options_are_seeded_and_close_to_the_default(checkpoint):
    from snapflow_ros.runtime.policy_runner import PolicyRunner

    plain = PolicyRunner(checkpoint, device="cpu", seed=3).infer(_Observation(), 2, "euler")
    runner = PolicyRunner(checkpoint, device="cpu", seed=3, inference_dtype="bfloat16")
    runner.warmup(iterations=1, num_steps=2, mode="euler")
    fast = runner.infer(_Observation(), 2, "euler")
    again = PolicyRunner(checkpoint, device="cpu", seed=3, inference_dtype="bfloat16").infer(
        _Observation(), 2, "euler")
    np.testing.assert_array_equal(fast.actions, again.actions)
    spread = np.std(plain.actions)
    assert 0 < np.abs(fast.actions - plain.actions).max() / spread < BF16_BOUND
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer(_Observation())


# -- CUDA ----------------------------------------------------------------------------------------


@CUDA
@pytest.mark.parametrize(("steps", "mode"), [(1, "jump"), (10, "euler")])
def test_cuda_graph_gives_the_plain_actions_and_follows_new_inputs(steps, mode):
    policy = tiny_policy().cuda()
    fast = FastInference(policy, FastInferenceConfig(accelerate="cuda_graph"))
    cuda_batch = _pytree.tree_map(lambda v: v.cuda() if isinstance(v, torch.Tensor) else v,
                                  batch(0))
    fast.warmup(cuda_batch, num_steps=steps, mode=mode)
    for seed in range(3):
        observation = _pytree.tree_map(
            lambda v: v.cuda() if isinstance(v, torch.Tensor) else v, batch(seed))
        expected = predict_action_chunk(policy, observation, num_steps=steps, mode=mode,
                                        noise=noise(seed).cuda())
        actual = fast.predict(observation, num_steps=steps, mode=mode, noise=noise(seed).cuda())
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    graph_set = fast.status["graph_sets"][0]
    assert graph_set["prefix"] == "graph", graph_set["notes"]
    assert graph_set["samplers"] == {f"{steps}x{mode}": "graph"}, graph_set["notes"]


@CUDA
def test_cuda_graph_runner_with_bfloat16_is_close_to_the_float32_runner(checkpoint):
    from snapflow_ros.runtime.policy_runner import PolicyRunner

    plain = PolicyRunner(checkpoint, device="cuda", seed=3).infer(_Observation(), 1)
    runner = PolicyRunner(checkpoint, device="cuda", seed=3, accelerate="cuda_graph",
                          inference_dtype="bfloat16")
    runner.warmup(iterations=2, num_steps=1)
    fast = runner.infer(_Observation(), 1)
    assert np.abs(fast.actions - plain.actions).max() / np.std(plain.actions) < BF16_BOUND
    runner.close()


# -- the policy's capture shims --------------------------------------------------------------


class _PolicyWithShims(CompactFlowPolicy):
    """Records when the accelerated path installs and undoes its capture shims."""

    events: list

    def install_capture_shims(self):
        self.events.append("installed")
        return lambda: self.events.append("undone")


def test_accelerated_paths_install_the_policys_capture_shims_until_closed():
    source = tiny_policy()
    policy = _PolicyWithShims(source.config, ROBOT, source.normalization_stats()).eval()
    policy.events = []
    FastInference(policy).close()  # the plain path leaves the model alone
    assert policy.events == []
    fast = FastInference(policy, FastInferenceConfig(accelerate="compile"))  # compiles lazily
    assert policy.events == ["installed"]
    fast.close()
    fast.close()
    assert policy.events == ["installed", "undone"]
