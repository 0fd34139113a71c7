import pytest
import torch

from tem_localizer import BeliefGrid


def test_default_geometry_matches_the_spec():
    grid = BeliefGrid()
    assert (grid.size, grid.radius, grid.cell_size) == (101, 50, 10.0)
    assert grid.occupancy_origin == (-505.0, -505.0)
    centres = grid.cell_centres()
    assert centres[50, 50].tolist() == [0.0, 0.0]
    assert centres[50, 51].tolist() == [10.0, 0.0]     # columns are x
    assert centres[51, 50].tolist() == [0.0, 10.0]     # rows are y
    assert centres[0, 0].tolist() == [-500.0, -500.0]


def test_initial_belief_is_a_normalized_gaussian_at_the_centre():
    grid = BeliefGrid(21, 200.0)
    belief = grid.initial_belief(torch.tensor([[0.0, 0.0], [30.0, -20.0]]))
    assert belief.shape == (2, 21, 21)
    torch.testing.assert_close(belief.sum(dim=(1, 2)), torch.ones(2))
    summary = grid.summarize(belief)
    torch.testing.assert_close(summary.mean, torch.tensor([[0.0, 0.0], [30.0, -20.0]]),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(summary.mode, torch.tensor([[0.0, 0.0], [30.0, -20.0]]))
    sd = 0.1 * 10 * 10.0                           # 0.1 R gamma; belief ∝ exp(-(r/sd)^2)
    assert float(summary.covariance[0, 0, 0]) == pytest.approx(sd**2 / 2, rel=0.05)
    assert abs(float(summary.covariance[0, 0, 1])) < 1e-4


def test_summary_of_a_single_cell():
    grid = BeliefGrid(5, 4.0)
    belief = torch.zeros(1, 5, 5)
    belief[0, 3, 0] = 1.0
    summary = grid.summarize(belief)
    assert summary.mean[0].tolist() == [-2.0, 1.0]
    assert summary.covariance.abs().max() == 0


def test_occupancy_scales_the_peak_to_100():
    grid = BeliefGrid(5, 4.0)
    belief = torch.zeros(1, 5, 5)
    belief[0, 1, 2], belief[0, 1, 3] = 0.75, 0.25
    data = grid.to_occupancy(belief)
    assert data.dtype == torch.int8 and data.shape == (1, 25)
    assert int(data[0, 1 * 5 + 2]) == 100 and int(data[0, 1 * 5 + 3]) == 33
