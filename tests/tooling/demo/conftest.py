"""tests/demo: the scenario, summary and process tests are unit tests; the modules named in
E2E_MODULES run the demo itself on a real control plane and are marked e2e, the way
tests/e2e/conftest.py marks every test under it."""

from __future__ import annotations

from pathlib import Path

import pytest

E2E_MODULES = frozenset({"test_demo_e2e.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if path.parent == here and path.name in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)
