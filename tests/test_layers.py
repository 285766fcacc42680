"""The import-linter contracts in pyproject.toml (run by `make lint`) catch what they claim to:
each case below breaks one rule in a copy of the tree, and `lint-imports` must fail naming it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "headroom",
    "kubeapi",
    "serving",
    "webhook",
    "extender",
    "nodeagent",
    "certs",
    "cli",
    "tooling",
    "tests",
    "bench",
]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            tree / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.so*", "corpus"),
        )
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def test_the_copied_tree_keeps_every_contract(pristine: Path) -> None:
    result = lint_imports(pristine)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "headroom/names.py",
            "import extender.view",
            "Layers: the CLI over the components, over the edges, over the contract",
        ),
        (
            "kubeapi/cache.py",
            "import cli.status",
            "Layers: the CLI over the components, over the edges, over the contract",
        ),
        ("webhook/mutate.py", "import extender.verbs", "The components do not import each other"),
        (
            "extender/scaler/decision.py",
            "import prometheus_client",
            "The contract and the pure modules import no client, server or NVML library",
        ),
        (
            "headroom/fit.py",
            "import kubernetes",
            "The contract and the pure modules import no client, server or NVML library",
        ),
        (
            "extender/binder.py",
            "import tooling.localcluster",
            "Nothing shipped imports the repository's tooling or tests",
        ),
        ("nodeagent/agent.py", "import pynvml", "pynvml is read in one module"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(
    pristine: Path, tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # the violation under test\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout
    assert f"{contract} BROKEN" in result.stdout
