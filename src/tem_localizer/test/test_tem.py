import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

from tem_localizer import BeliefGrid, Localizer, LocalizerConfig
from tem_localizer.localizer import DeviceUnavailable
from tem_localizer.tem import TEM2d

GRID = BeliefGrid(41, 400.0)          # cell size 10
SMELL_DIM = 16


def smell_field(positions):
    """A smooth synthetic smell: (B, 2) world units -> (B, D)."""
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(SMELL_DIM, 2, generator=generator) / 60.0
    return torch.cos(positions.float() @ directions.T)


def spiral(steps):
    t = torch.arange(steps + 1, dtype=torch.float64)
    coords = torch.stack([0.15 * t * torch.cos(2 * math.pi * t / 100),
                          0.15 * t * torch.sin(2 * math.pi * t / 100)], dim=1)
    return coords


def run_model(model, coords, batch=1):
    belief, errors, losses = None, [], []
    for t in range(len(coords) - 1):
        action = (coords[t] - coords[t - 1] if t else torch.zeros(2)).float().to(model.device)
        smell = smell_field(coords[t][None]).to(model.device)
        step = model(belief, action[None].repeat(batch, 1), smell.repeat(batch, 1))
        belief = step.belief
        mean = GRID.summarize(belief).mean[0].double().cpu()
        errors.append(float((mean - coords[t]).norm()))
        losses.append(float(step.loss[0]))
    return belief, np.array(errors), np.array(losses)


def test_path_integration_alone_tracks_within_a_cell():
    model = TEM2d(GRID, SMELL_DIM, use_memory_to_localize=False)
    belief, errors, losses = run_model(model, spiral(300))
    assert errors.max() < GRID.cell_size
    assert float(belief.sum()) == pytest.approx(1.0, abs=1e-5)
    assert losses[-1] < losses[0]       # the memory predicts smell better as it fills


def test_memory_on_new_ground_holds_the_belief_back():
    """The seed's failure mode: recall keeps pulling the belief to where it has been."""
    stuck = TEM2d(GRID, SMELL_DIM, use_memory_to_localize=True)
    _, errors, _ = run_model(stuck, spiral(300))
    assert errors[-1] > 3 * GRID.cell_size


def test_affinity_mixing_trusts_path_integration_when_nothing_changed():
    model = TEM2d(GRID, SMELL_DIM, use_memory_to_localize=True, mixing="affinity")
    _, errors, _ = run_model(model, spiral(300))
    assert errors.max() < 2 * GRID.cell_size


def test_batch_elements_do_not_mix():
    coords = spiral(60)
    single = TEM2d(GRID, SMELL_DIM, use_memory_to_localize=False)
    double = TEM2d(GRID, SMELL_DIM, batch_size=2, use_memory_to_localize=False)
    belief_one, _, _ = run_model(single, coords)
    belief_two, _, _ = run_model(double, coords, batch=2)
    torch.testing.assert_close(belief_two[0], belief_one[0])
    torch.testing.assert_close(belief_two[1], belief_one[0])


def test_learned_action_map_trains_through_the_kernel():
    config = LocalizerConfig(method="tem2d", grid_size=41, extent=400.0,
                             sensory_embedding_dim=SMELL_DIM, learn_action_map=True,
                             train_every=20, device="cpu", use_memory_to_localize=False)
    localizer = Localizer(config)
    before = localizer.model.action_map.detach().clone()
    coords = spiral(40)
    for t in range(40):
        action = (coords[t] - coords[t - 1]).numpy() if t else np.zeros(2)
        localizer.step(action, smell_field(coords[t][None])[0].numpy())
    assert not torch.equal(localizer.model.action_map.detach(), before)
    assert not localizer.model.memory.beliefs.requires_grad


SMALL = LocalizerConfig(method="tem2d", grid_size=41, extent=400.0,
                        sensory_embedding_dim=SMELL_DIM, device="cpu")


def good_smell():
    return np.ones(SMELL_DIM, dtype=np.float32)


@pytest.mark.parametrize("action, smell, kind", [
    ([float("nan"), 0.0], good_smell(), "nonfinite_action"),
    ([0.0, float("inf")], good_smell(), "nonfinite_action"),
    ([1.0, 0.0], np.full(SMELL_DIM, np.nan, dtype=np.float32), "nonfinite_smell"),
    ([1.0, 0.0], np.ones(SMELL_DIM + 1, dtype=np.float32), "wrong_smell_length"),
    ([1.0, 0.0, 3.0], good_smell(), "bad_action"),
])
def test_bad_input_is_skipped_counted_and_leaves_the_belief_alone(action, smell, kind):
    localizer = Localizer(SMALL)
    localizer.step([0.0, 0.0], good_smell())
    belief = localizer.belief.clone()
    memory_length = len(localizer.model.memory)
    result = localizer.step(action, smell)
    assert result.skipped == kind
    assert localizer.counters.skipped == {kind: 1}
    torch.testing.assert_close(localizer.belief, belief)
    assert len(localizer.model.memory) == memory_length
    assert np.isfinite(result.mean).all()


def test_oversized_action_is_clipped_and_warned_once(caplog):
    localizer = Localizer(SMALL)
    with caplog.at_level(logging.WARNING):
        first = localizer.step([50.0, 0.0], good_smell())
        localizer.step([0.0, 50.0], good_smell())
    assert localizer.counters.clipped_actions == 2
    assert sum("max_action_norm" in r.message for r in caplog.records) == 1
    assert first.mean[0] == pytest.approx(20.0, abs=1.0)


def test_belief_pushed_off_the_grid_restarts_at_dead_reckoning():
    localizer = Localizer(dataclasses.replace(SMALL, use_memory_to_localize=False))
    result = None
    for _ in range(20):                 # 20 x 20 = 400 units: well past the 200-unit edge
        result = localizer.step([20.0, 0.0], good_smell())
        assert np.isfinite(result.mean).all()
        assert float(localizer.belief.sum()) == pytest.approx(1.0, abs=1e-4)
    assert localizer.counters.lost >= 1
    assert result.mean[0] > 150.0       # restarted near the edge, toward the dead-reckoned x


def test_dead_reckoning_sums_the_actions():
    localizer = Localizer(LocalizerConfig(method="deadreckoning", sensory_embedding_dim=4))
    for action in ([1.0, 2.0], [3.0, -1.0]):
        result = localizer.step(action, np.zeros(4))
    np.testing.assert_allclose(result.mean, [4.0, 1.0])
    assert result.belief is None


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_cuda_gives_the_cpu_beliefs():
    coords = spiral(200)
    on_cpu, _, _ = run_model(TEM2d(GRID, SMELL_DIM, use_memory_to_localize=False), coords)
    on_gpu, errors, losses = run_model(
        TEM2d(GRID, SMELL_DIM, use_memory_to_localize=False, device="cuda"), coords)
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-6, rtol=1e-4)
    assert errors.max() < GRID.cell_size


@needs_cuda
def test_memory_recall_runs_on_cuda():
    model = TEM2d(GRID, SMELL_DIM, use_memory_to_localize=True, mixing="affinity",
                  device="cuda")
    belief, errors, _ = run_model(model, spiral(200))
    assert belief.device.type == "cuda" and model.memory.beliefs.device.type == "cuda"
    assert float(belief.sum()) == pytest.approx(1.0, abs=1e-4)
    assert errors.max() < 2 * GRID.cell_size


@needs_cuda
def test_auto_device_picks_cuda():
    localizer = Localizer(dataclasses.replace(SMALL, device="auto"))
    result = localizer.step([1.0, 0.0], good_smell())
    assert localizer.device.type == "cuda" and result.belief.device.type == "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without CUDA")
def test_cuda_asked_for_but_absent_is_an_error():
    with pytest.raises(DeviceUnavailable, match="cuda"):
        Localizer(LocalizerConfig(device="cuda"))
