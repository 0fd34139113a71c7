"""TEM localizer: a location belief grid shifted by actions plus a memory of (belief, smell).

ROS-free core modules: ``grid`` (geometry), ``translation`` (path integration), ``memory``
(place-cell memory), ``tem`` (the TEM2d model), ``localizer`` (one agent, guarded input).

The names below that need torch load on first use (PEP 562), so a process that only reads
the configuration schema (the command line, the launcher) starts without importing torch.
"""
from importlib import import_module

from tem_localizer.config import LocalizerConfig

_LOADED_ON_USE = {"BeliefGrid": "tem_localizer.grid", "Localizer": "tem_localizer.localizer",
                  "LocalizerStep": "tem_localizer.localizer"}

__all__ = ["BeliefGrid", "Localizer", "LocalizerConfig", "LocalizerStep"]


def __getattr__(name: str):
    if name in _LOADED_ON_USE:
        return getattr(import_module(_LOADED_ON_USE[name]), name)
    raise AttributeError(f"module 'tem_localizer' has no attribute {name!r}")
