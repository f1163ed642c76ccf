import pytest

from tests.helpers import ALPACA_DEV_FILE, ALPACA_FILE, HH_FILE


@pytest.fixture
def hh_file():
    if not HH_FILE.exists():
        pytest.skip(f"real data not found at {HH_FILE} (../shared/data beside the repository)")
    return HH_FILE


@pytest.fixture
def alpaca_file():
    if not ALPACA_FILE.exists():
        pytest.skip(f"real data not found at {ALPACA_FILE} (../shared/data beside the repository)")
    return ALPACA_FILE


@pytest.fixture
def alpaca_dev_file():
    if not ALPACA_DEV_FILE.exists():
        pytest.skip(
            f"real data not found at {ALPACA_DEV_FILE} (../shared/data beside the repository)"
        )
    return ALPACA_DEV_FILE
