"""The forager's drive, memory and goal rule on small hand-made situations."""
import math

import numpy as np
import pytest

from spiral_controller.forager import Forager, ForagerSettings

SMELL = np.ones(8)


def fed(forager: Forager, position, health, smell=SMELL, step=0):
    forager.observe(np.asarray(position, float), smell, health)
    return forager(step)


def test_health_rising_is_a_meal_here_and_it_stays_while_the_fruit_lasts():
    forager = Forager()
    fed(forager, [0, 0], 500.0)
    move, _ = fed(forager, [10, 0], 523.0)            # +25 fruit, -2 to move
    assert forager.counters.meals == 1 and not forager.places[0].poisonous
    np.testing.assert_allclose(forager.places[0].position, [10, 0])
    assert np.allclose(move, 0)                        # one fruit a step: stay
    fed(forager, [10, 0], 522.0)                       # the fruit ran out (rest costs 1)
    assert forager.places[0].empty_since is not None


def test_health_falling_is_poison_remembered_and_avoided_by_place_and_smell():
    forager = Forager()
    fed(forager, [0, 0], 500.0)
    poisoned_smell = np.array([1.0, 0, 0, 0, 0, 0, 0, 0]) * 40
    fed(forager, [5, 0], 473.0, smell=poisoned_smell)  # -25 poison, -2 to move
    assert forager.counters.poisonings == 1 and forager.places[0].poisonous
    # heading straight back at it: the move bends away
    forager.position = np.array([-10.0, 0.0])
    bent = forager._avoid_poison(np.array([20.0, 0.0]))
    assert np.linalg.norm(forager.position + bent - [5, 0]) > 15.0
    # far from where it was remembered (a wrong estimate), but smelling like it: back off
    forager.position, forager.smell = np.array([300.0, 0.0]), poisoned_smell * 0.9
    forager.last_move = np.array([4.0, 0.0])
    np.testing.assert_allclose(forager._avoid_poison(np.array([4.0, 0.0])), [-4.0, 0.0])


def test_hungry_it_goes_to_the_nearest_place_with_fruit_again():
    forager = Forager(settings=ForagerSettings(regrow_wait=100))
    for position in ([100.0, 0.0], [-40.0, 0.0], [0.0, 30.0]):
        forager.position = np.array(position)
        forager._remember(poisonous=False).meals = 3
    forager.places[2].empty_since = 50                 # found empty at step 50
    forager.position = np.zeros(2)
    forager.step_index = 120                           # 70 steps later: not regrown yet
    assert forager._pick_goal() is forager.places[1]   # 40 away beats 100 away
    forager.step_index = 200
    assert forager._pick_goal() is forager.places[2]   # regrown, and nearest


def test_full_it_rests_hungry_it_travels_toward_the_goal():
    forager = Forager()
    forager.position = np.array([60.0, 0.0])
    forager._remember(poisonous=False).meals = 1
    move, _ = fed(forager, [0, 0], 1000.0)
    assert np.allclose(move, 0)                        # full: rest
    for step in range(1, 200):                         # resting costs 1 a step
        forager.observe(np.zeros(2), SMELL, 1000.0 - step)
    assert forager.counters.poisonings == 0
    move, _ = forager(200)                             # 801 < 0.85 * 1000: hungry
    assert move[0] == pytest.approx(forager.settings.speed) and move[1] == pytest.approx(0)


def test_with_no_pose_yet_it_explores_and_counts():
    forager = Forager()
    forager.observe(None, SMELL, None)
    move, heading = forager(0)
    assert np.hypot(*move) == pytest.approx(forager.settings.explore_speed)
    assert forager.counters.missing_pose == 1 and forager.counters.missing_health == 1


def test_a_nan_pose_holds_the_last_good_one_moved_by_the_last_command():
    forager = Forager()
    forager.observe(np.array([10.0, 5.0]), SMELL, None)
    move, _ = forager(0)
    forager.observe(np.array([math.nan, 0.0]), SMELL, None)
    np.testing.assert_allclose(forager.position, np.array([10.0, 5.0]) + move)
    assert forager.counters.missing_pose == 1


def test_without_health_it_is_not_starving_it_keeps_looking():
    forager = Forager()
    moves = []
    for step in range(50):
        forager.observe(np.zeros(2) + step, SMELL * (1 + step % 3), None)
        moves.append(forager(step)[0])
    assert all(np.hypot(*m) > 0 for m in moves) and forager.counters.meals == 0
    assert forager.counters.missing_health == 50


def test_a_world_with_no_edible_tree_is_explored_forever_without_error():
    """Only poison: every meal hurts; it learns the places and keeps exploring."""
    forager = Forager()
    generator = np.random.default_rng(0)
    position, health = np.zeros(2), 1000.0
    for step in range(2000):
        poisoned = step % 400 == 399
        health += -27.0 if poisoned else -2.0
        forager.observe(position, generator.normal(size=8) * 10, health)
        move, _ = forager(step)
        position = position + move
    assert forager.counters.meals == 0 and forager.counters.poisonings == 5
    assert all(p.poisonous for p in forager.places)
    assert np.hypot(*move) > 0                         # still exploring
