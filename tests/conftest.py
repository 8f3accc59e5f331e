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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "real_thread_threshold: keep the solvers' rows-per-thread threshold"
    )


@pytest.fixture(autouse=True)
def _threads_on_small_data(monkeypatch, request):
    """Exercise the multi-threaded training paths on the small data of the tests: the solvers
    otherwise keep fewer than MIN_ROWS_PER_THREAD rows per thread on one thread."""
    if "real_thread_threshold" not in request.keywords:
        monkeypatch.setattr("fmlearn.optim.sgd.MIN_ROWS_PER_THREAD", 1)
