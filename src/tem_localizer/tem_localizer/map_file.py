"""Saving and loading a slam map: one .npz file of plain arrays plus a JSON header.

Never pickle: loading reads arrays only (``allow_pickle=False``) and checks every field
against the header and against the localizer that loads it, so a file from another grid or
smell size, another schema version, or a truncated or corrupted file is refused with one line
naming the file and the field, before anything in the running localizer changes. Written to a
temporary file beside the target and renamed into place, so a crash never leaves half a map.
"""
from __future__ import annotations

import json
import os
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA = "treeworld-slam-map"
VERSION = 1


class MapFileError(Exception):
    """A map file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class SavedMap:
    """What a map holds. Positions in world units, in the frame of the session that made it."""

    smell_dim: int
    code_dim: int
    code_seed: int
    keyframe_every: int
    grid_size: int
    cell_size: float
    codes: np.ndarray                 # (P, code_dim) float16
    odometry: np.ndarray              # (P, 2) float32, the step into each place
    offsets: np.ndarray               # (P, 2) float32, each place from its keyframe
    keyframe_positions: np.ndarray    # (K, 2) float64

    def header(self) -> dict:
        return {"schema": SCHEMA, "version": VERSION, "smell_dim": self.smell_dim,
                "code_dim": self.code_dim, "code_seed": self.code_seed,
                "keyframe_every": self.keyframe_every, "grid_size": self.grid_size,
                "cell_size": self.cell_size, "places": len(self.codes),
                "keyframes": len(self.keyframe_positions)}


def save_map(saved: SavedMap, file: str | Path) -> None:
    """Write ``saved`` to ``file`` atomically: a crash leaves the old file or the new one."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.parent / f".{file.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    try:
        # opened like any file the user writes, so its mode follows the umask (mkstemp's
        # 0600 made a map saved in a container unreadable to anyone else)
        with open(temporary, "xb") as stream:
            np.savez(stream, header=np.frombuffer(json.dumps(saved.header()).encode(), np.uint8),
                     codes=saved.codes, odometry=saved.odometry, offsets=saved.offsets,
                     keyframe_positions=saved.keyframe_positions)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, file)
    finally:
        temporary.unlink(missing_ok=True)


def load_map(file: str | Path, smell_dim: int, grid_size: int, cell_size: float) -> SavedMap:
    """Read and check ``file`` for a localizer with these smell and grid sizes."""
    file = Path(file)

    def refuse(field: str, problem: str) -> MapFileError:
        return MapFileError(f"{file}: {field}: {problem}")

    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise MapFileError(f"{file}: no such map file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise MapFileError(f"{file}: not a readable map file ({error})") from None
    if "header" not in arrays:
        raise refuse("header", "missing (not a Tree World map)")
    try:
        header = json.loads(arrays["header"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise refuse("header", f"not JSON ({error})") from None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise refuse("schema", f"{header.get('schema') if isinstance(header, dict) else header!r}"
                     f" is not {SCHEMA}")
    if header.get("version") != VERSION:
        raise refuse("version", f"{header.get('version')!r}; this localizer reads version "
                     f"{VERSION}")
    expected = {"smell_dim": smell_dim, "grid_size": grid_size}
    for field, value in expected.items():
        if header.get(field) != value:
            raise refuse(field, f"the map has {header.get(field)!r}, this localizer {value}")
    if not isinstance(header.get("cell_size"), (int, float)) or \
            abs(header["cell_size"] - cell_size) > 1e-9:
        raise refuse("cell_size", f"the map has {header.get('cell_size')!r}, this localizer "
                     f"{cell_size}")
    for field in ("code_dim", "code_seed", "keyframe_every", "places", "keyframes"):
        if not isinstance(header.get(field), int) or header[field] < 0:
            raise refuse(field, f"{header.get(field)!r} is not a count")
    places, keyframes = header["places"], header["keyframes"]
    if places == 0:          # saved before any step was localized: nowhere to find oneself in
        raise refuse("places", "the map is empty")
    shapes = {"codes": (places, header["code_dim"]), "odometry": (places, 2),
              "offsets": (places, 2), "keyframe_positions": (keyframes, 2)}
    for field, shape in shapes.items():
        if field not in arrays:
            raise refuse(field, "missing")
        if arrays[field].shape != shape:
            raise refuse(field, f"shape {arrays[field].shape}, the header says {shape}")
        if not np.isfinite(arrays[field].astype(np.float64)).all():
            raise refuse(field, "holds NaN or inf")
    every = header["keyframe_every"]
    if every < 1 or keyframes != -(-places // every):
        raise refuse("keyframes", f"{keyframes} keyframes cannot carry {places} places at "
                     f"{every} per keyframe")
    return SavedMap(smell_dim, header["code_dim"], header["code_seed"], every, grid_size,
                    float(header["cell_size"]), arrays["codes"].astype(np.float16),
                    arrays["odometry"].astype(np.float32), arrays["offsets"].astype(np.float32),
                    arrays["keyframe_positions"].astype(np.float64))
