"""The node agent's layering: `nodeagent/nvml.py` is the only module of the project importing
pynvml, and the agent's pure modules load neither pynvml nor the Kubernetes client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["headroom", "webhook", "extender", "nodeagent", "certs", "tests", "bench"]
PURE = ["nodeagent.cgroups", "nodeagent.readings", "nodeagent.report", "nodeagent.xid",
        "nodeagent.wire"]


def importers_of(module: str) -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                         and node.level == 0 else [])
                if any(n.split(".")[0] == module for n in names):
                    found.add(str(path.relative_to(ROOT)))
    return found


def test_only_the_nvml_edge_imports_pynvml() -> None:
    assert importers_of("pynvml") == {"nodeagent/nvml.py"}


def test_the_scan_sees_imports() -> None:
    # The walk must find what is there, or the test above proves nothing.
    assert "nodeagent/agent.py" in importers_of("prometheus_client") | importers_of("headroom")


def test_pure_modules_load_no_client_library() -> None:
    code = (f"import sys\nfor m in {PURE!r}: __import__(m)\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pynvml', 'kubernetes', 'prometheus_client', 'flask'))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True, timeout=60)
    assert result.stdout.strip() == ""
