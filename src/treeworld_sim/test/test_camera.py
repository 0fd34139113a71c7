"""The simulator's panoramic camera: trees at their bearing, by kind, by distance."""
import math

import numpy as np

from treeworld_sim.camera import EDIBLE_COLOUR, POISONOUS_COLOUR, SKY, PanoramicCamera

CAMERA = PanoramicCamera(16, 128)


def tree_columns(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The columns where a pixel on the horizon's row is nearer ``colour`` than the sky."""
    row = image[CAMERA.horizon - 1].astype(float)
    return np.flatnonzero(np.linalg.norm(row - colour, axis=1) < np.linalg.norm(row - SKY, axis=1))


def test_a_tree_ahead_is_in_the_middle_and_turning_left_moves_it_right():
    trees, poisonous = np.array([[50.0, 0.0]]), np.array([False])
    ahead = CAMERA.render(np.zeros(2), 0.0, trees, poisonous)
    columns = tree_columns(ahead, EDIBLE_COLOUR)
    assert columns.size and abs(columns.mean() + 0.5 - 64) <= 1
    turned = CAMERA.render(np.zeros(2), math.pi / 2, trees, poisonous)   # now it is on the right
    assert abs(tree_columns(turned, EDIBLE_COLOUR).mean() - columns.mean() - 32) <= 1
    behind = CAMERA.render(np.zeros(2), math.pi, trees, poisonous)       # split across the edges
    assert set(tree_columns(behind, EDIBLE_COLOUR)) <= {0, 1, 2, 125, 126, 127}


def test_poisonous_trees_are_red_edible_green_and_near_ones_wider_and_in_front():
    trees = np.array([[200.0, 0.0], [30.0, 0.0], [0.0, 30.0]])
    poisonous = np.array([True, False, True])
    image = CAMERA.render(np.zeros(2), 0.0, trees, poisonous)
    near = tree_columns(image, EDIBLE_COLOUR)
    assert tree_columns(image, POISONOUS_COLOUR).size       # the one to the left
    far_alone = CAMERA.render(np.zeros(2), 0.0, trees[:1], poisonous[:1])
    assert tree_columns(far_alone, POISONOUS_COLOUR).size < near.size   # far looks narrower
    # the near edible tree hides the far poisonous one behind it
    assert not set(tree_columns(image, POISONOUS_COLOUR)) & set(near)
    assert image.dtype == np.uint8 and image.shape == (16, 128, 3)
