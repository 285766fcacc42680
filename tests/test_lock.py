"""The dependency locks (requirements/*.lock, written by `make lock`) agree with pyproject.toml
and requirements/constraints.txt, and `make`'s venv installs from them. The checks are
scripts/lock.py's; each way a lock can drift is made here in a copy of the inputs, and the check
must name it. No network: nothing is resolved or installed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from scripts.lock import (
    CONSTRAINTS,
    DIGEST_HEADER,
    PYPROJECT,
    RUNTIME_LOCK,
    TEST_LOCK,
    check,
    check_all,
    inputs_digest,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_locks_agree_with_pyproject_and_the_constraints() -> None:
    assert check_all(ROOT) == [], "run `make lock` and commit requirements/"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the lock's inputs and the locks, to break."""
    shutil.copy(ROOT / PYPROJECT, tmp_path / PYPROJECT)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    assert check_all(tmp_path) == []
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def restamp(root: Path) -> None:
    """Stamp the copy's locks with its inputs' digest, as if `make lock` had run and changed
    nothing: what is left to catch is what the pins themselves get wrong."""
    for lock in (TEST_LOCK, RUNTIME_LOCK):
        path = root / lock.path
        digest = inputs_digest(root)
        path.write_text(DIGEST_HEADER.sub(f"# inputs-sha256: {digest}", path.read_text()))


def stale(lock: str) -> str:
    return (
        f"{lock}: compiled from other inputs than {PYPROJECT} and {CONSTRAINTS} hold now"
        " (its `# inputs-sha256:` differs): run `make lock`"
    )


def test_a_new_dependency_is_caught_in_both_locks(tree: Path) -> None:
    edit(tree / PYPROJECT, '"flask>=3.0",', '"flask>=3.0",\n  "msgpack>=1.0",')
    unpinned = "no pin for [project].dependencies 'msgpack>=1.0'"
    assert check(tree, TEST_LOCK) == [stale(TEST_LOCK.path), f"{TEST_LOCK.path}: {unpinned}"]
    restamp(tree)
    assert check_all(tree) == [f"{TEST_LOCK.path}: {unpinned}", f"{RUNTIME_LOCK.path}: {unpinned}"]


def test_a_specifier_the_pin_violates_is_caught(tree: Path) -> None:
    edit(tree / PYPROJECT, '"croniter>=6",', '"croniter>=8",')
    restamp(tree)
    (pin,) = [p for p in check(tree, RUNTIME_LOCK) if "croniter" in p]
    assert pin == (
        f"{RUNTIME_LOCK.path}: croniter==7.0.0 does not satisfy [project].dependencies"
        " 'croniter>=8'"
    )


def test_a_test_extra_requirement_binds_the_test_lock_only(tree: Path) -> None:
    edit(tree / PYPROJECT, '"pytest>=8",', '"pytest>=8", "pytest-xdist>=3",')
    restamp(tree)
    assert check(tree, RUNTIME_LOCK) == []
    assert check(tree, TEST_LOCK) == [
        f"{TEST_LOCK.path}: no pin for [project.optional-dependencies].test 'pytest-xdist>=3'"
    ]


def test_a_requirement_whose_marker_excludes_this_python_needs_no_pin(tree: Path) -> None:
    old_python_only = "\n  \"tomli>=2; python_version < '3.11'\","
    edit(tree / PYPROJECT, '"flask>=3.0",', '"flask>=3.0",' + old_python_only)
    assert check_all(tree) == [stale(TEST_LOCK.path), stale(RUNTIME_LOCK.path)]
    restamp(tree)
    assert check_all(tree) == []


def test_a_pin_without_a_hash_is_caught(tree: Path) -> None:
    lock = tree / TEST_LOCK.path
    text = lock.read_text()
    hashed = re.search(r"^flask==3\.1\.3 \\\n(    --hash=sha256:\w+( \\)?\n)+", text, re.MULTILINE)
    assert hashed
    lock.write_text(text.replace(hashed.group(0), "flask==3.1.3\n"))
    assert check_all(tree) == [
        f"{TEST_LOCK.path}: 'flask==3.1.3' has no --hash=sha256: (pip --require-hashes)"
    ]


def test_an_unpinned_line_or_an_option_is_caught(tree: Path) -> None:
    lock = tree / TEST_LOCK.path
    edit(lock, "flask==3.1.3", "flask>=3.1.3")
    edit(lock, "aiohappyeyeballs==", "--find-links /opt/wheels\naiohappyeyeballs==")
    assert check(tree, TEST_LOCK) == [
        f"{TEST_LOCK.path}: option '--find-links': a lock holds only hashed pins",
        f"{TEST_LOCK.path}: 'flask>=3.1.3' is not pinned to one version (name==version)",
        f"{TEST_LOCK.path}: no pin for [project].dependencies 'flask>=3.0'",
    ]


def test_a_changed_constraint_is_caught(tree: Path) -> None:
    with (tree / CONSTRAINTS).open("a") as constraints:
        constraints.write("croniter==7.0.1\n")
    assert stale(TEST_LOCK.path) in check(tree, TEST_LOCK)
    restamp(tree)
    expected = f"does not satisfy {CONSTRAINTS} 'croniter==7.0.1'"
    assert check(tree, TEST_LOCK) == [f"{TEST_LOCK.path}: croniter==7.0.0 {expected}"]


def test_the_runtime_lock_must_pin_the_test_locks_versions(tree: Path) -> None:
    edit(tree / RUNTIME_LOCK.path, "croniter==7.0.0", "croniter==7.0.1")
    assert check_all(tree) == [
        f"{RUNTIME_LOCK.path}: croniter==7.0.1 but {TEST_LOCK.path} pins croniter==7.0.0:"
        " CI would test other libraries than the image runs"
    ]


def test_the_digest_follows_the_dependency_lists_not_their_order_or_comments(tree: Path) -> None:
    before = inputs_digest(tree)
    flask, gunicorn = '  "flask>=3.0",\n', '  "gunicorn>=22",\n'
    edit(tree / PYPROJECT, flask + gunicorn, gunicorn + flask)
    edit(tree / PYPROJECT, "[tool.ruff]", "# a comment\n[tool.ruff]")
    edit(tree / CONSTRAINTS, "# None at the moment", "# (reworded) None at the moment")
    assert inputs_digest(tree) == before
    edit(tree / PYPROJECT, 'requires-python = ">=3.11"', 'requires-python = ">=3.12"')
    assert inputs_digest(tree) != before


def makefile_rule(target: str) -> tuple[list[str], list[str]]:
    """A Makefile rule's prerequisites and recipe lines."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:(.*)\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert match, f"Makefile: no rule for {target}"
    return match.group(1).split(), [line.strip() for line in match.group(2).splitlines()]


def test_the_venv_installs_the_test_lock_and_reinstalls_when_it_changes() -> None:
    prerequisites, recipe = makefile_rule("$(VENV)/.installed")
    assert TEST_LOCK.path in prerequisites
    installs = [line for line in recipe if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [
        f"$(BIN)/pip install --quiet --require-hashes -r {TEST_LOCK.path}",
        "$(BIN)/pip install --quiet --no-deps -e .",
    ]


def test_make_lock_runs_the_lock_script() -> None:
    _, recipe = makefile_rule("lock")
    assert any("-m scripts.lock" in line for line in recipe)
