from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# Experiment files under tests/data are inputs of the tests, not suites to run.
collect_ignore_glob = ["data/*"]

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under integration/ drives the real Docker engine (`-m "not docker"` runs
    # the rest: unit tests and the acceptance tests on the fake backend).
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.docker)
