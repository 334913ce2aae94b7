"""Where the dataset tests find the recordings (``CADENCE_DATASETS`` overrides)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("CADENCE_DATASETS", REPO.parent / "shared" / "datasets"))
FREETEXT = DATASETS / "keystrokes-freetext"


def require_freetext() -> Path:
    """The free-text recordings, or skip the calling test module with the reason."""
    if not FREETEXT.is_dir():
        pytest.skip(
            f"free-text keystroke recordings not found at {FREETEXT} "
            "(set CADENCE_DATASETS to the folder holding keystrokes-freetext/)",
            allow_module_level=True,
        )
    return FREETEXT
