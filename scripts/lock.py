"""The dependency locks. `make lock` runs this module with pip-tools (in a venv of its own) to
compile pyproject.toml's dependencies, under requirements/constraints.txt, into two locks with a
sha256 for every file: requirements/test.lock (the runtime set plus the `test` extra: `make`'s
venv, hence CI) and requirements/runtime.lock (the image's, constrained to the test lock's
versions so both run the same libraries). Each lock is stamped with a digest of the inputs it was
compiled from; `check` says where a lock and those inputs disagree (tests/test_lock.py runs it).

    python -m scripts.lock [--upgrade] [--upgrade-package NAME ...]   # compile, stamp, check
    python -m scripts.lock --check                                    # only check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = "pyproject.toml"
CONSTRAINTS = "requirements/constraints.txt"
EXTRAS_HEADER = re.compile(r"^# extras: (?P<extras>.*)$", re.MULTILINE)
DIGEST_HEADER = re.compile(r"^# inputs-sha256: (?P<digest>[0-9a-f]{64})$", re.MULTILINE)
NO_EXTRAS = "(none)"


@dataclass(frozen=True)
class Lock:
    """One lock file (its path from the repository root) and the pyproject extras it covers."""

    path: str
    extras: tuple[str, ...]


TEST_LOCK = Lock("requirements/test.lock", ("test",))
RUNTIME_LOCK = Lock("requirements/runtime.lock", ())


@dataclass(frozen=True)
class Pin:
    """A requirement line of a lock: `name==version` and its `--hash=sha256:` values."""

    name: str  # canonical (PEP 503)
    version: str
    hashes: tuple[str, ...]


def project_table(root: Path) -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((root / PYPROJECT).read_text())["project"]
    return table


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file: comments and blank lines dropped."""
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def constraint_lines(root: Path) -> list[str]:
    path = root / CONSTRAINTS
    return requirement_lines(path.read_text()) if path.exists() else []


def inputs_digest(root: Path) -> str:
    """sha256 of everything a lock is compiled from: pyproject.toml's requires-python,
    dependencies and every extra, and the constraints. Order within a list does not change the
    resolution, so it does not change the digest; comments elsewhere in the files do neither."""
    project = project_table(root)
    extras = project.get("optional-dependencies", {})
    assert isinstance(extras, dict), "[project.optional-dependencies] must be a table"
    inputs = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(_strings(project.get("dependencies", []))),
        "optional-dependencies": {name: sorted(_strings(reqs)) for name, reqs in extras.items()},
        "constraints": sorted(constraint_lines(root)),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _strings(value: object) -> list[str]:
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), value
    return list(value)


def header(lock: Lock, *, digest: str) -> str:
    extras = ", ".join(lock.extras) or NO_EXTRAS
    return (
        f"# Written by `make lock` (scripts/lock.py) from {PYPROJECT}'s [project] dependencies\n"
        f"# and extras below, under {CONSTRAINTS}: edit those and rerun it, never this file.\n"
        f"# extras: {extras}\n"
        f"# inputs-sha256: {digest}\n"
    )


def logical_lines(text: str) -> Iterator[str]:
    """Lines as pip reads them: `\\` continues a line, a comment line ends one."""
    pending: list[str] = []
    for raw in text.splitlines():
        body = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not body:
            if pending:
                yield " ".join(pending)
                pending = []
            continue
        pending.append(body.removesuffix("\\").strip())
        if not body.endswith("\\"):
            yield " ".join(pending)
            pending = []
    if pending:
        yield " ".join(pending)


def read_pins(text: str, *, where: str) -> tuple[dict[str, Pin], list[str]]:
    """The pins of a lock's text, and what is wrong with any line of it."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    for line in logical_lines(text):
        words = line.split()
        if words[0].startswith("-"):
            problems.append(f"{where}: option {words[0]!r}: a lock holds only hashed pins")
            continue
        hashes = tuple(w.removeprefix("--hash=") for w in words if w.startswith("--hash="))
        spec = " ".join(w for w in words if not w.startswith("--"))
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as error:
            problems.append(f"{where}: {spec!r}: {error}")
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            problems.append(f"{where}: {spec!r} is not pinned to one version (name==version)")
            continue
        version = specifiers[0].version
        if not any(h.startswith("sha256:") for h in hashes):
            problems.append(f"{where}: {spec!r} has no --hash=sha256: (pip --require-hashes)")
        name = canonicalize_name(requirement.name)
        pins[name] = Pin(name=name, version=version, hashes=hashes)
    return pins, problems


def declared(root: Path, extras: Sequence[str]) -> tuple[list[tuple[str, Requirement]], list[str]]:
    """pyproject.toml's requirements for the runtime and the given extras, each with the field it
    comes from, keeping those whose marker holds here; and the extras pyproject lacks."""
    project = project_table(root)
    optional = project.get("optional-dependencies", {})
    assert isinstance(optional, dict)
    fields: list[tuple[str, str, list[str]]] = [
        ("[project].dependencies", "", _strings(project.get("dependencies", [])))
    ]
    missing = []
    for extra in extras:
        if extra not in optional:
            missing.append(f"{PYPROJECT} [project.optional-dependencies] has no extra {extra!r}")
            continue
        field = f"[project.optional-dependencies].{extra}"
        fields.append((field, extra, _strings(optional[extra])))
    out = []
    for field, extra, lines in fields:
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                out.append((field, requirement))
    return out, missing


def check(root: Path, lock: Lock) -> list[str]:
    """Where `lock` disagrees with pyproject.toml and the constraints under `root`: a
    requirement or constraint it does not pin, or pins outside the specifier; a line without a
    hash or not pinned; a stamp (digest, extras) other than the inputs' own. Empty: they agree."""
    path = root / lock.path
    if not path.exists():
        return [f"{lock.path}: missing: run `make lock`"]
    text = path.read_text()
    pins, problems = read_pins(text, where=lock.path)
    digest = DIGEST_HEADER.search(text)
    if digest is None or digest["digest"] != inputs_digest(root):
        problems.append(
            f"{lock.path}: compiled from other inputs than {PYPROJECT} and {CONSTRAINTS} hold now"
            " (its `# inputs-sha256:` differs): run `make lock`"
        )
    stamped = EXTRAS_HEADER.search(text)
    stamped_extras = stamped["extras"].strip() if stamped else None
    if stamped_extras != (", ".join(lock.extras) or NO_EXTRAS):
        problems.append(f"{lock.path}: `# extras: {stamped_extras}`, expected {lock.extras}")
    requirements, missing = declared(root, lock.extras)
    problems += missing
    constraints = [(CONSTRAINTS, Requirement(line)) for line in constraint_lines(root)]
    for field, requirement in requirements + constraints:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            if field != CONSTRAINTS:  # a constraint only binds what something requires
                problems.append(f"{lock.path}: no pin for {field} {str(requirement)!r}")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{lock.path}: {pin.name}=={pin.version} does not satisfy {field}"
                f" {str(requirement)!r}"
            )
    return problems


def check_same_versions(root: Path, *, runtime: Lock, test: Lock) -> list[str]:
    """The runtime lock pins nothing the test lock does not pin at the same version."""
    runtime_pins, _ = read_pins((root / runtime.path).read_text(), where=runtime.path)
    test_pins, _ = read_pins((root / test.path).read_text(), where=test.path)
    problems = []
    for name, pin in sorted(runtime_pins.items()):
        other = test_pins.get(name)
        if other is None or other.version != pin.version:
            found = f"{name}=={other.version}" if other else "nothing"
            problems.append(
                f"{runtime.path}: {name}=={pin.version} but {test.path} pins {found}:"
                " CI would test other libraries than the image runs"
            )
    return problems


def check_all(root: Path) -> list[str]:
    problems = check(root, TEST_LOCK) + check(root, RUNTIME_LOCK)
    if (root / TEST_LOCK.path).exists() and (root / RUNTIME_LOCK.path).exists():
        problems += check_same_versions(root, runtime=RUNTIME_LOCK, test=TEST_LOCK)
    return problems


def compile_lock(
    lock: Lock, *, root: Path, constraints: Sequence[str], upgrade: Sequence[str]
) -> None:
    """pip-compile `lock` (keeping its existing pins unless `upgrade` says otherwise), then
    stamp it with the inputs' digest."""
    command = [
        *(sys.executable, "-m", "piptools", "compile", "--quiet", "--generate-hashes"),
        *("--strip-extras", "--allow-unsafe", "--no-emit-find-links", "--no-emit-index-url"),
        *("--no-emit-trusted-host", "--output-file", lock.path),
        *(f"--constraint={c}" for c in constraints),
        *(f"--extra={e}" for e in lock.extras),
        *upgrade,
        PYPROJECT,
    ]
    # The header names the command to rerun, not pip-compile's own command line.
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"}
    subprocess.run(command, cwd=root, env=env, check=True)
    path = root / lock.path
    path.write_text(header(lock, digest=inputs_digest(root)) + path.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.lock", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check the locks")
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest")
    parser.add_argument(
        "-P",
        "--upgrade-package",
        action="append",
        default=[],
        metavar="NAME",
        help="move NAME's pin",
    )
    args = parser.parse_args(argv)
    if not args.check:
        upgrade = ["--upgrade"] if args.upgrade else []
        upgrade += [f"--upgrade-package={name}" for name in args.upgrade_package]
        try:
            # The test lock first: the runtime lock then takes its versions as constraints.
            compile_lock(TEST_LOCK, root=ROOT, constraints=[CONSTRAINTS], upgrade=upgrade)
            runtime_constraints = [CONSTRAINTS, TEST_LOCK.path]
            compile_lock(RUNTIME_LOCK, root=ROOT, constraints=runtime_constraints, upgrade=[])
        except subprocess.CalledProcessError as error:
            # pip-compile has said why (a conflict, an unknown version) above.
            print(f"pip-compile failed (exit {error.returncode})", file=sys.stderr)
            return error.returncode
    problems = check_all(ROOT)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
