import pytest
import torch

from tem_localizer import BeliefGrid
from tem_localizer.memory import AccumulatedMemory, LocationBeliefMemory

GRID = BeliefGrid(11, 100.0)


def beliefs_at(points, batch=1):
    centres = torch.tensor(points, dtype=torch.float32)
    return GRID.initial_belief(centres).reshape(batch, -1, 11, 11)


def test_empty_memory_reads_zeros_and_samples_nothing():
    memory = LocationBeliefMemory(2, 11, 4)
    query = GRID.initial_belief(torch.zeros(2, 2))
    assert memory.read(query).abs().sum() == 0
    assert memory.sample(torch.ones(2, 4)) is None


def test_read_returns_the_smell_stored_at_the_same_place():
    memory = LocationBeliefMemory(1, 11, 3)
    places = beliefs_at([[-40.0, -40.0], [40.0, 40.0]])[0]
    memory.write(places[0:1], torch.tensor([[1.0, 0.0, 0.0]]))
    memory.write(places[1:2], torch.tensor([[0.0, 1.0, 0.0]]))
    read = memory.read(places[1:2])
    assert read[0, 1] > 0.99 and read[0, 0] < 0.01
    far = torch.zeros(1, 11, 11)
    far[0, 0, 10] = 1.0                            # a corner neither belief covers
    assert memory.read(far).abs().sum() == 0       # below the threshold: zeros, not noise


def test_batch_elements_have_separate_memories():
    memory = LocationBeliefMemory(2, 11, 2)
    place = GRID.initial_belief(torch.zeros(2, 2))
    memory.write(place, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(memory.read(place), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_leave_one_out_read_ignores_the_entry_itself():
    memory = LocationBeliefMemory(1, 11, 2)
    place = GRID.initial_belief(torch.zeros(1, 2))
    memory.write(place, torch.tensor([[1.0, 0.0]]))
    memory.write(place, torch.tensor([[0.0, 1.0]]))
    keys = torch.cat([place, place])[None]                    # (1, 2, S, S)
    loo = memory.read(keys, mask_diagonal=True)
    torch.testing.assert_close(loo[0], torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_accumulated_memory_reads_like_the_episodic_one():
    generator = torch.Generator().manual_seed(0)
    episodic = LocationBeliefMemory(2, 11, 16, initial_slots=4)     # also exercises growth
    accumulated = AccumulatedMemory(2, 11, 16)
    for _ in range(40):
        centre = torch.rand(2, 2, generator=generator) * 80 - 40
        belief = GRID.initial_belief(centre)
        smell = torch.randn(2, 16, generator=generator)
        episodic.write(belief, smell)
        accumulated.write(belief, smell)
    query = GRID.initial_belief(torch.rand(2, 2, generator=generator) * 60 - 30)
    torch.testing.assert_close(accumulated.read(query), episodic.read(query, threshold=0.0),
                               atol=1e-5, rtol=1e-5)
    assert len(episodic) == 40 and episodic.nbytes == 2 * 40 * (121 + 16) * 4


def test_sample_prefers_the_matching_smell_near_the_reference():
    memory = LocationBeliefMemory(1, 11, 2)
    left, right = beliefs_at([[-30.0, 0.0], [30.0, 0.0]])[0].split(1)
    memory.write(left, torch.tensor([[10.0, 0.0]]))
    memory.write(right, torch.tensor([[0.0, 10.0]]))
    generator = torch.Generator().manual_seed(0)
    recalled = memory.sample(torch.tensor([[0.0, 10.0]]), temperature=1.0, generator=generator)
    assert recalled.shape == (1, 11, 11)
    assert float(recalled.sum()) == pytest.approx(1.0)
    assert GRID.summarize(recalled).mean[0, 0] > 25            # the right-hand place
    # With the left place as reference, the right one falls below the match threshold.
    recalled = memory.sample(torch.tensor([[0.0, 10.0]]), reference=left, temperature=1.0,
                             reference_match_threshold=0.5, generator=generator)
    assert GRID.summarize(recalled).mean[0, 0] < -25


def test_sample_without_aggregation_and_determinism():
    memory = LocationBeliefMemory(1, 11, 2)
    for x in (-30.0, 0.0, 30.0):
        memory.write(beliefs_at([[x, 0.0]])[0], torch.tensor([[1.0, 1.0]]))
    draws = [memory.sample(torch.tensor([[1.0, 1.0]]), num_samples=7, aggregate=False,
                           generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert draws[0].shape == (1, 7, 11, 11)
    torch.testing.assert_close(draws[0], draws[1])


def test_prune_removes_repeats_and_keeps_distinct_places():
    memory = LocationBeliefMemory(1, 11, 4)
    places = beliefs_at([[-30.0, 0.0], [30.0, 0.0]])[0]
    for _ in range(5):
        memory.write(places[0:1], torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    memory.write(places[1:2], torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    before = memory.read(places[None])
    removed = memory.prune(max_error=0.05)
    assert removed == 4
    assert int(memory.valid[0, : len(memory)].sum()) == 2
    torch.testing.assert_close(memory.read(places[None]), before)


def test_a_bounded_memory_keeps_the_newest_pairs_at_a_constant_size():
    memory = LocationBeliefMemory(1, 5, 2, initial_slots=2, max_entries=3)
    for t in range(7):
        belief = torch.zeros(1, 5, 5)
        belief[0, t % 5, 0] = 1.0
        memory.write(belief, torch.tensor([[float(t), 0.0]]))
    assert len(memory) == 3 and memory.beliefs.shape[1] == 3 and memory.written == 7
    assert sorted(memory.smells[0, :, 0].tolist()) == [4.0, 5.0, 6.0]
    # a read at the newest place finds the newest pair there
    query = torch.zeros(1, 5, 5)
    query[0, 6 % 5, 0] = 1.0
    assert memory.read(query)[0, 0] == pytest.approx(6.0)
