"""Tree World: a seeded 2-D world of fruit trees sensed through a weak 'smell'
(docs/design.md §2)."""
from treeworld_sim.config import WorldConfig
from treeworld_sim.world import StepRecord, TreeWorld

__all__ = ["StepRecord", "TreeWorld", "WorldConfig"]
