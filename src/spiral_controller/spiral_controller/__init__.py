"""Controllers that move the Tree World agent (docs/design.md §3). They never see the true pose."""
from spiral_controller.config import ControllerConfig
from spiral_controller.forager import Forager, ForagerSettings
from spiral_controller.paths import (
    Controller,
    PathFileError,
    load_path_file,
    make_controller,
    senses,
)

__all__ = ["Controller", "ControllerConfig", "Forager", "ForagerSettings", "PathFileError",
           "load_path_file", "make_controller", "senses"]
