import os
from pathlib import Path

import pytest

DATA_DIR = Path(
    os.environ.get("FMLEARN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture
def data_dir():
    """The shared real data sets; tests that need them skip when they are absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR} (set FMLEARN_DATA)")
    return DATA_DIR
