"""The forager's drive, memory and goal rule: on hand-made memories and on small hand-made
Tree Worlds (trees placed by the test), steered by the true pose."""
import math

import numpy as np

from spiral_controller.forager import BARREN, EDIBLE, POISONOUS, Forager, ForagerSettings
from treeworld_sim import TreeWorld, WorldConfig

SMELL = np.ones(8)


def fed(forager: Forager, position, health, smell=SMELL, step=0):
    """Tells it it is at ``position`` (its estimate is of the step before its last move)."""
    forager.observe(np.asarray(position, float) - forager.last_move, smell, health)
    return forager(step)


def knows(forager: Forager, *positions, kind=EDIBLE):
    for position in positions:
        forager.position = np.asarray(position, float)
        forager._remember(kind)
    return forager.places[-len(positions):]


def hand_made_world(trees, poisonous, seed=0, **config) -> TreeWorld:
    """A Tree World with its trees where the test says."""
    world = TreeWorld(WorldConfig(num_trees=len(trees), seed=seed, **config))
    world.tree_positions = np.asarray(trees, dtype=np.float64)
    world.tree_poisonous = np.asarray(poisonous, dtype=bool)
    return world


def forage(world: TreeWorld, forager: Forager, steps: int, start: int = 0) -> list[np.ndarray]:
    """Steered by the true pose of the step before, from step ``start``; returns the
    positions visited."""
    visited, before = [], None
    for step in range(start, start + steps):
        record = world.observe()
        if not world.alive:
            break
        forager.observe(before, record.smell, world.health)
        before = world.position.copy()
        world.move(*forager(step))
        visited.append(world.position.copy())
    return visited


# -- the drive and the memory -------------------------------------------------------------
def test_a_rise_in_health_is_a_meal_here_and_it_stays_while_fruit_comes_and_there_is_room():
    forager = Forager()
    fed(forager, [0, 0], 500.0)
    forager.best_health = 1000.0
    move, _ = fed(forager, [10, 0], 523.0)            # +25 fruit, -2 to move
    assert forager.counters.meals == 1 and forager.places[0].kind == EDIBLE
    np.testing.assert_allclose(forager.places[0].position, [10, 0])
    assert np.allclose(move, 0)                        # one fruit a step: stay
    fed(forager, [10, 0], 522.0)                       # stayed, no fruit came: emptied
    assert forager.places[0].empty_since is not None


def test_full_it_leaves_a_tree_with_fruit_left_without_calling_it_empty():
    forager = Forager()
    fed(forager, [0, 0], 1000.0)
    fed(forager, [0, 5], 960.0)
    move, _ = fed(forager, [10, 0], 984.0)             # a meal, but no room for another
    assert forager.counters.meals == 1 and not np.allclose(move, 0)
    fed(forager, [30, 0], 982.0)
    assert forager.places[0].empty_since is None


def test_a_fall_in_health_is_poison_remembered_and_given_a_berth():
    forager = Forager()
    fed(forager, [0, 0], 500.0)
    fed(forager, [5, 0], 473.0, smell=np.eye(8)[0] * 40)   # -25 poison, -2 to move
    assert forager.counters.poisonings == 1 and forager.places[0].kind == POISONOUS
    forager.position, closest = np.array([-40.0, 0.0]), np.inf
    for _ in range(10):                                # a goal straight through it
        forager.position = forager.position + forager._step_toward(np.array([60.0, 0.0]))
        closest = min(closest, float(np.linalg.norm(forager.position - [5, 0])))
    assert closest > 15.0 and forager.position[0] > 40.0
    # a goal just beside the poison is still reached: the berth shrinks to fit
    forager.position = np.array([5.0, -14.0])
    move = forager._step_toward(np.array([5.0, -12.0]))
    np.testing.assert_allclose(forager.position + move, [5.0, -12.0], atol=1.0)


def test_eating_at_an_emptied_tree_means_every_tree_has_refilled():
    forager = Forager()
    first, second = knows(forager, [0, 0], [100, 0])
    first.empty_since, second.empty_since = 10, 20
    fed(forager, [100, 0], 500.0, step=990)
    fed(forager, [100, 0], 524.0, step=1001)
    assert first.empty_since is None and second.empty_since is None


def test_remembered_places_move_with_the_step_they_were_measured_from():
    """A tree found while the estimate had drifted 30 units: when the localizer later says
    where that step really was, the tree moves with it, and so does the goal; a place
    measured from another step, and one with no step, stay."""
    forager = Forager()
    forager.observe(np.array([100.0, 0.0]), SMELL, 500.0, anchor=7)
    forager(7)
    forager.observe(np.array([110.0, 0.0]) - forager.last_move, SMELL, 523.0, anchor=8)
    tree = forager.places[0]                           # ate at (110, 0), from step 8
    assert tree.anchor == 8
    np.testing.assert_allclose(tree.offset, tree.position - (np.array([110.0, 0.0]) -
                                                             forager.last_move))
    forager.observe(np.array([300.0, 0.0]), SMELL, 522.0, anchor=9)
    other = forager._remember(BARREN)                  # measured from step 9
    forager.anchor = None
    unanchored = forager._remember(POISONOUS, np.array([-50.0, 0.0]))
    assert forager.anchors() == [8, 9]
    before = {id(p): p.position.copy() for p in forager.places}
    step_8_now = np.array([110.0, 0.0]) - forager.last_move + np.array([-30.0, 0.0])
    forager.reanchor([8], step_8_now[None])
    np.testing.assert_allclose(tree.position, before[id(tree)] + [-30.0, 0.0])
    np.testing.assert_allclose(other.position, before[id(other)])
    np.testing.assert_allclose(unanchored.position, before[id(unanchored)])
    forager.reanchor([8, 9], np.array([[np.nan, np.nan], [290.0, 0.0]]))   # unknown: kept
    np.testing.assert_allclose(tree.position, before[id(tree)] + [-30.0, 0.0])
    np.testing.assert_allclose(other.position, before[id(other)] + [-10.0, 0.0])
    forager.position, forager.step_index = np.zeros(2), 10
    assert forager._pick_goal() is tree


def test_a_meal_remeasures_its_tree_from_the_newest_step():
    forager = Forager()
    forager.observe(np.array([0.0, 0.0]), SMELL, 500.0, anchor=1)
    forager.best_health = 1000.0                       # room for more: it stays to eat
    forager(1)
    forager.observe(np.array([10.0, 0.0]) - forager.last_move, SMELL, 523.0, anchor=2)
    tree = forager.places[0]
    assert np.allclose(forager(2)[0], 0)
    forager.observe(np.array([12.0, 0.0]), SMELL, 547.0, anchor=3)    # a second fruit
    assert forager.places == [tree] and tree.anchor == 3
    np.testing.assert_allclose(tree.position, [11.0, 0.0])            # the middle of both
    np.testing.assert_allclose(tree.offset, [-1.0, 0.0])              # from step 3's estimate


# -- the goal rule -------------------------------------------------------------------------
def test_hungry_it_picks_the_nearest_tree_expected_to_have_fruit():
    forager = Forager(settings=ForagerSettings(regrow_wait=100))
    far, near, nearest = knows(forager, [100, 0], [-40, 0], [0, 30])
    nearest.empty_since = 50
    forager.position, forager.step_index = np.zeros(2), 120
    assert forager._pick_goal() is near                # 30 away, but emptied 70 steps ago
    forager.step_index = 200
    assert forager._pick_goal() is nearest             # regrow_wait has passed


def test_every_tree_empty_it_explores_while_it_can_afford_to_and_then_waits_at_one():
    forager = Forager(settings=ForagerSettings(want_trees=5))
    far, near = knows(forager, [300, 0], [-60, 0])
    far.empty_since = near.empty_since = 0
    forager.position, forager.step_index = np.zeros(2), 10
    forager.health, forager.best_health = 700.0, 1000.0
    assert forager._pick_goal() is None                # explore: it knows too few trees
    forager.health = 300.0                             # below reserve_below of the best
    assert forager._pick_goal() is near
    forager.search = None
    forager.observe(np.zeros(2), SMELL, 299.0)
    for step in range(11, 20):                         # go there and wait, resting
        forager.observe(forager.position, SMELL, 299.0 - step)
        move, _ = forager(step)
    np.testing.assert_allclose(forager.position, [-60, 0], atol=2.0)
    assert np.allclose(move, 0) and forager.search.place is near


def test_waiting_at_an_emptied_tree_a_change_of_smell_means_the_trees_refilled():
    """At rest the smell changes only when a fruit count does: no meal came, so the tree is
    beside the remembered place, not on it. It looks around, and every tree is ready again."""
    forager = Forager(settings=ForagerSettings(want_trees=1))
    here, other = knows(forager, [0, 0], [200, 0])
    here.empty_since = other.empty_since = 5
    fed(forager, [0, 0], 300.0, step=10)
    forager.best_health = 1000.0                       # hungry, and too low to explore
    for step in range(11, 40):
        move, _ = fed(forager, forager.position + forager.last_move, 300.0 - step, step=step)
        assert np.allclose(move, 0) and forager.search.place is here
    refilled = SMELL + np.eye(8)[3]                    # the fruit-count word changed
    move, _ = fed(forager, forager.position, 260.0, smell=refilled, step=40)
    assert here.empty_since is None and other.empty_since is None
    for step in range(41, 46):
        move, _ = fed(forager, forager.position + move, 300.0 - step, smell=refilled, step=step)
        assert 0 < np.hypot(*move) and np.linalg.norm(forager.position) < 40


def test_a_wait_that_brings_nothing_moves_on_to_another_tree():
    forager = Forager(settings=ForagerSettings(want_trees=1, wait_steps=30))
    first, second = knows(forager, [0, 0], [60, 0])
    first.empty_since = second.empty_since = 0
    forager.best_health, position = 1000.0, np.zeros(2)
    for step in range(1, 60):
        move, _ = fed(forager, position, 300.0, step=step)
        position = position + move
    assert first.waited_at > 0 and forager.search.place is second
    assert np.linalg.norm(position - [60, 0]) < 2.0


def test_fed_it_rests_once_it_knows_enough_trees_and_explores_until_then():
    forager = Forager(settings=ForagerSettings(want_trees=2))
    knows(forager, [60, 0])
    move, _ = fed(forager, [0, 0], 1000.0)
    assert np.hypot(*move) > 0                         # one tree is not enough: explore
    knows(forager, [-60, 0])
    move, _ = fed(forager, [0, 0], 999.0, step=1)
    assert np.allclose(move, 0)


def test_a_smell_more_like_the_poisonous_trees_than_the_edible_ones_reads_as_poison():
    forager = Forager()
    edible_word, poison_word = np.eye(8)[0], np.eye(8)[1]
    forager.smell = edible_word + 0.1
    knows(forager, [0, 0])
    forager.smell = poison_word + 0.1
    knows(forager, [100, 0], kind=POISONOUS)
    forager.smell = poison_word * 30 + edible_word * 5
    assert forager._smells_poisonous()
    forager.smell = edible_word * 30 + poison_word * 5
    assert not forager._smells_poisonous()


# -- small hand-made worlds -----------------------------------------------------------------
def test_it_smells_out_an_edible_tree_and_lives_off_it():
    """One tree 86 units away, refilled every 100 steps: enough to live on by resting."""
    world = hand_made_world([[70.0, 50.0]], [False], regrow_every=100)
    forager = Forager(settings=ForagerSettings(want_trees=1))
    visited = forage(world, forager, 1500)
    assert forager.counters.homings <= 2               # found by its smell, not by chance
    (tree,) = [p for p in forager.places if p.kind == EDIBLE]
    assert np.linalg.norm(tree.position - [70, 50]) < world.config.eat_distance
    assert forager.counters.meals >= 50 and world.health > 800
    assert max(np.linalg.norm(v) for v in visited) < 200


def test_it_learns_a_poisonous_tree_and_does_not_eat_there_again():
    world = hand_made_world([[40.0, 40.0], [-150.0, 120.0]], [True, False],
                            regrow_every=300)
    forager = Forager()
    forage(world, forager, 3000)
    assert 1 <= world.poisonous_fruit_eaten <= 2
    assert forager.counters.meals >= 20
    assert any(p.kind == POISONOUS and np.linalg.norm(p.position - [40, 40]) < 15
               for p in forager.places)


def test_a_world_with_no_edible_tree_is_explored_forever_without_error():
    world = hand_made_world([[80.0, 0.0], [-90.0, 60.0], [0.0, -200.0]], [True] * 3)
    forager = Forager()
    forage(world, forager, 1000)
    learned = world.poisonous_fruit_eaten
    visited = forage(world, forager, 3000, start=1000)
    assert forager.counters.meals == 0 and world.fruit_eaten == world.poisonous_fruit_eaten
    assert all(p.kind in (POISONOUS, BARREN) for p in forager.places)
    assert learned <= 2 * 3 and world.poisonous_fruit_eaten == learned
    assert np.linalg.norm(visited[-1] - visited[-2]) > 0   # still exploring at the end


# -- bad input -------------------------------------------------------------------------------
def test_with_no_pose_yet_it_explores_and_counts():
    forager = Forager()
    forager.observe(None, SMELL, None)
    move, heading = forager(0)
    assert 0 < np.hypot(*move) <= forager.settings.speed
    np.testing.assert_allclose(np.hypot(*heading), 1.0)
    assert forager.counters.missing_pose == 1 and forager.counters.missing_health == 1


def test_a_nan_pose_holds_the_last_good_one_moved_by_the_last_command():
    forager = Forager()
    forager.observe(np.array([10.0, 5.0]), SMELL, None)
    move, _ = forager(0)
    forager.observe(np.array([math.nan, 0.0]), SMELL, None)
    np.testing.assert_allclose(forager.position, np.array([10.0, 5.0]) + move)
    assert forager.counters.missing_pose == 1


def test_without_health_it_is_not_starving_it_keeps_looking_and_learns_nothing_wrong():
    forager = Forager()
    position = np.zeros(2)
    for step in range(50):
        forager.observe(position, SMELL * (1 + step % 3), None)
        move, _ = forager(step)
        assert np.hypot(*move) > 0
        position = position + move
    assert forager.counters.meals == forager.counters.poisonings == 0
    assert forager.counters.missing_health == 50


def test_every_move_respects_the_speed_limit():
    world = hand_made_world([[40.0, 40.0], [-60.0, 20.0], [0.0, -90.0]], [False, True, False])
    forager = Forager(settings=ForagerSettings(speed=7.5))
    visited = forage(world, forager, 800)
    steps = np.linalg.norm(np.diff(np.array(visited), axis=0), axis=1)
    assert steps.max() <= 7.5 + 1e-9
