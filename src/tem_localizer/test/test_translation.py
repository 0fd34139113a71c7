import pytest
import torch

from tem_localizer.translation import filter_size_for, path_integrate, translation_kernel


def kernel(action, cell_size=1.0, filter_size=5, blur_sigma=0.0):
    return translation_kernel(torch.tensor([action], dtype=torch.float32), cell_size,
                              filter_size, blur_sigma)[0]


def test_whole_shift_puts_all_mass_on_one_cell():
    expected = torch.zeros(5, 5)
    expected[1, 1] = 1.0
    torch.testing.assert_close(kernel((1.0, 1.0)), expected)
    expected = torch.zeros(5, 5)
    expected[2, 1] = 1.0
    torch.testing.assert_close(kernel((1.0, 0.0)), expected)


def test_fractional_shift_is_split_bilinearly():
    expected = torch.zeros(5, 5)
    expected[2, 2], expected[2, 3], expected[3, 2], expected[3, 3] = 0.45, 0.30, 0.15, 0.10
    torch.testing.assert_close(kernel((-0.4, -0.25)), expected)


def gaussian_blob(size=101, sharpness=50.0):
    """sd = 5 cells by default, so no mass reaches the edge when shifted by 10."""
    points = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(points, points, indexing="ij")
    return torch.exp(-(x**2 + y**2) * sharpness)


def centre_of_mass(image):
    rows, cols = torch.meshgrid(torch.arange(image.shape[-2], dtype=image.dtype),
                                torch.arange(image.shape[-1], dtype=image.dtype), indexing="ij")
    mass = image.sum()
    return float((image * cols).sum() / mass), float((image * rows).sum() / mass)


def test_blob_moves_by_exactly_the_action_in_cells():
    blob = gaussian_blob()[None]
    shifted = path_integrate(blob, torch.tensor([[10.0, 10.0]]), 1.0, 31)
    (x0, y0), (x1, y1) = centre_of_mass(blob[0]), centre_of_mass(shifted[0])
    assert x1 - x0 == pytest.approx(10.0, abs=1e-3)
    assert y1 - y0 == pytest.approx(10.0, abs=1e-3)   # rows are y: up when drawn origin-lower


def test_the_seeds_broad_blob_peak_moves_by_ten_cells():
    blob = gaussian_blob(sharpness=1.0)[None]          # the seed's exp(-|p|^2) on [-1, 1]^2
    shifted = path_integrate(blob, torch.tensor([[10.0, 10.0]]), 1.0, 31)[0]
    row, col = divmod(int(shifted.argmax()), 101)
    assert (row, col) == (60, 60)


def test_batch_elements_move_independently():
    blobs = gaussian_blob()[None].repeat(2, 1, 1)
    actions = torch.tensor([[10.0, 0.0], [-3.0, -10.0]])
    together = path_integrate(blobs, actions, 1.0, 31)
    for b in range(2):
        alone = path_integrate(blobs[b:b + 1], actions[b:b + 1], 1.0, 31)
        torch.testing.assert_close(together[b], alone[0])
    assert centre_of_mass(together[1])[0] - centre_of_mass(blobs[1])[0] == pytest.approx(-3.0,
                                                                                       abs=1e-3)


def test_cell_size_scales_the_shift():
    blob = gaussian_blob()[None]
    shifted = path_integrate(blob, torch.tensor([[25.0, -15.0]]), 10.0, 7)
    dx = centre_of_mass(shifted[0])[0] - centre_of_mass(blob[0])[0]
    dy = centre_of_mass(shifted[0])[1] - centre_of_mass(blob[0])[1]
    assert (dx, dy) == (pytest.approx(2.5, abs=1e-3), pytest.approx(-1.5, abs=1e-3))


def test_blur_keeps_mass_and_centre_but_spreads():
    plain = kernel((2.0, 1.0), filter_size=filter_size_for(2.0, 1.0, 1.5))
    blurred = kernel((2.0, 1.0), filter_size=filter_size_for(2.0, 1.0, 1.5), blur_sigma=1.5)
    assert float(blurred.sum()) == pytest.approx(1.0, abs=1e-5)
    assert centre_of_mass(blurred) == pytest.approx(centre_of_mass(plain), abs=1e-3)
    assert float(blurred.max()) < 0.2


def test_filter_size_covers_the_largest_action():
    assert filter_size_for(20.0, 10.0) == 7
    size = filter_size_for(20.0, 10.0)
    diagonal = 20.0 / 2**0.5
    k = kernel((diagonal, -diagonal), cell_size=10.0, filter_size=size)
    assert float(k.sum()) == pytest.approx(1.0)
    k = kernel((20.0, 0.0), cell_size=10.0, filter_size=size)
    assert float(k[3, 1]) == pytest.approx(1.0)


def test_kernel_is_differentiable_in_the_action():
    action = torch.tensor([[0.3, -0.6]], requires_grad=True)
    k = translation_kernel(action, 1.0, 5)
    (k * torch.arange(25.0).reshape(5, 5)).sum().backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
