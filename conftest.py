"""Suite-wide checks: the tests write only into their temporary folders."""
import hashlib
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def working_tree_state() -> str | None:
    """A digest of what git sees changed or untracked in the checkout (None outside git)."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=ROOT, capture_output=True, text=True)
    if status.returncode != 0:
        return None
    diff = subprocess.run(["git", "diff", "--binary"], cwd=ROOT, capture_output=True).stdout
    return status.stdout + hashlib.sha256(diff).hexdigest()


@pytest.fixture(scope="session", autouse=True)
def working_tree_is_left_unchanged():
    before = working_tree_state()
    yield
    after = working_tree_state()
    assert after == before, f"the tests changed the working tree:\n{after}"
