"""TEM localizer: a location belief grid shifted by actions plus a memory of (belief, smell).

ROS-free core modules: ``grid`` (geometry), ``translation`` (path integration), ``memory``
(place-cell memory), ``tem`` (the TEM2d model), ``localizer`` (one agent, guarded input).
"""
from tem_localizer.config import LocalizerConfig
from tem_localizer.grid import BeliefGrid
from tem_localizer.localizer import Localizer, LocalizerStep

__all__ = ["BeliefGrid", "Localizer", "LocalizerConfig", "LocalizerStep"]
