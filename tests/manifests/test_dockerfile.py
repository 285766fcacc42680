"""The Dockerfile, checked without a Docker engine (there is none here): the base image, a
numeric non-root user that matches the manifests, every COPY source exists and is not
excluded by .dockerignore, everything `pip install .` needs is copied, no test extras, the
libraries installed from the runtime lock with their hashes checked and nothing resolved beyond
it, and the entrypoint runs every command line the manifests give our image."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import build_parser
from scripts.lock import RUNTIME_LOCK, TEST_LOCK
from tests.manifests.render import ROOT, Rendered, containers, pod_spec, render
from tests.manifests.test_references import our_image


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            out.append(Instruction(keyword.upper(), arguments.strip()))
    return out


def dockerfile() -> list[Instruction]:
    return instructions((ROOT / "Dockerfile").read_text())


def final_stage() -> list[Instruction]:
    steps = dockerfile()
    last_from = max(i for i, step in enumerate(steps) if step.keyword == "FROM")
    return steps[last_from:]


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_stage_is_the_python_311_slim_image() -> None:
    bases = [s.arguments.split()[0] for s in dockerfile() if s.keyword == "FROM"]
    assert bases and set(bases) == {"python:3.11-slim"}


def test_the_image_runs_as_a_numeric_non_root_user_the_manifests_agree_with() -> None:
    users = [s.arguments for s in final_stage() if s.keyword == "USER"]
    assert users, "no USER: the image would run as root"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match, f"USER {users[-1]}: must be numeric (runAsNonRoot cannot check a name)"
    uid = int(match.group(1))
    assert uid != 0 and int(match.group(2) or uid) != 0
    checked = 0
    for workload in Rendered(tuple(render())).workloads():
        pod = pod_spec(workload).get("securityContext", {})
        for container in containers(workload):
            if container["image"] != our_image():
                continue
            own = container.get("securityContext", {})
            assert own.get("runAsUser", pod.get("runAsUser")) == uid, container["name"]
            assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, container["name"]
            checked += 1
    assert checked == 4  # node agent, webhook, its certs sidecar, extender


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for the patterns used here: a pattern matches a path or any of its parent
    directories; `**/` matches any depth; `!` re-includes."""
    parts = Path(path).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        forms = [body, body.removeprefix("**/")] if body.startswith("**/") else [body]
        deep = body.startswith("**/")  # then a file name anywhere matches too
        if any(
            fnmatch.fnmatchcase(c, f) or (deep and fnmatch.fnmatchcase(Path(c).name, f))
            for c in candidates
            for f in forms
        ):
            result = not negate
    return result


def copies() -> list[list[str]]:
    """The sources of every COPY/ADD from the build context (not `--from` another stage)."""
    out = []
    for step in dockerfile():
        if step.keyword not in ("COPY", "ADD"):
            continue
        words = (
            json.loads(step.arguments)
            if step.arguments.startswith("[")
            else shlex.split(step.arguments)
        )
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        out.append(sources)
    return out


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    sources = [s for step in copies() for s in step]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not ignored(source.rstrip("/"), patterns), f"COPY {source}: .dockerignore drops it"


def test_dockerignore_keeps_keys_and_local_state_out() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".git/config",
        ".venv/bin/python",
        "tls/tls.key",
        "certs/ca.key",
        "headroom/__pycache__/x.pyc",
        "tests/e2e/conftest.py",
        "certs/secret.yaml",
        "tooling/localcluster.py",
    ):
        assert ignored(path, patterns), path
    for path in ("cli/main.py", "certs/pki.py", "pyproject.toml", "README.md"):
        assert not ignored(path, patterns), path


def test_the_build_copies_what_pip_install_needs() -> None:
    project = pyproject()
    copied = {s.rstrip("/") for step in copies() for s in step}
    assert {"pyproject.toml", str(project["project"]["readme"])} <= copied  # type: ignore[index]
    find = project["tool"]["setuptools"]["packages"]["find"]  # type: ignore[index]
    packages = {
        p.name
        for p in ROOT.iterdir()
        if (p / "__init__.py").is_file()
        and any(fnmatch.fnmatchcase(p.name, pat) for pat in find["include"])
    }
    assert packages == {
        "headroom",
        "kubeapi",
        "serving",
        "webhook",
        "extender",
        "nodeagent",
        "certs",
        "cli",
    }
    assert packages <= copied
    # The local control plane, the demo and the fake NVML need this repository: never shipped.
    assert "tooling" not in packages and "tooling" not in copied


def test_pip_installs_the_project_without_test_extras() -> None:
    runs = [
        s.arguments for s in dockerfile() if s.keyword == "RUN" and "pip install" in s.arguments
    ]
    assert runs
    for run in runs:
        assert "[test]" not in run and "-e " not in run
    assert any(re.search(r"pip install\b.*\s\.(\s|$)", run) for run in runs)


def test_the_build_installs_the_runtime_lock_with_hashes_and_the_package_alone() -> None:
    steps = dockerfile()
    installs = {
        i: shlex.split(s.arguments)
        for i, s in enumerate(steps)
        if s.keyword == "RUN" and "pip install" in s.arguments
    }
    from_lock = [
        i
        for i, words in installs.items()
        if "--require-hashes" in words and ["-r", RUNTIME_LOCK.path] in pairs(words)
    ]
    assert len(from_lock) == 1, f"no `pip install --require-hashes -r {RUNTIME_LOCK.path}`"
    copied = [
        i
        for i, s in enumerate(steps)
        if s.keyword == "COPY" and RUNTIME_LOCK.path in shlex.split(s.arguments)
    ]
    assert copied and copied[0] < from_lock[0], f"{RUNTIME_LOCK.path} is not copied before use"
    # Every other install adds only the package: a dependency resolved there would be unpinned.
    others = [words for i, words in installs.items() if i not in from_lock]
    assert others and all("--no-deps" in words for words in others)
    assert TEST_LOCK.path not in (ROOT / "Dockerfile").read_text()


def pairs(words: list[str]) -> list[list[str]]:
    return [words[i : i + 2] for i in range(len(words) - 1)]


def entrypoint() -> list[str]:
    (step,) = [s for s in final_stage() if s.keyword == "ENTRYPOINT"]
    words: list[str] = json.loads(step.arguments)  # exec form: signals reach the process
    return words


def test_the_entrypoint_is_the_console_script() -> None:
    scripts = pyproject()["project"]["scripts"]  # type: ignore[index]
    assert entrypoint() == ["headroom"]
    assert scripts["headroom"] == "cli.main:main"


@pytest.mark.parametrize("component", ["nodeagent", "webhook", "extender"])
def test_the_manifests_command_lines_parse(component: str) -> None:
    lines = [
        [*(c.get("command") or entrypoint()), *c.get("args", [])]
        for w in Rendered(tuple(render())).workloads()
        for c in containers(w)
        if c["image"] == our_image()
    ]
    (argv,) = [line for line in lines if line[1] == component]
    assert argv[0] == "headroom"
    args = build_parser().parse_args(argv[1:])
    assert args.command == component


def test_the_install_page_documents_the_image_the_manifests_run() -> None:
    page = (ROOT / "docs" / "install.md").read_text()
    build = f"docker build -t {our_image()} ."
    assert build in page
    assert build in (ROOT / "Dockerfile").read_text()
