"""Layering rules of DESIGN.md that a test can check: pure modules import no client library, and
the webhook and the extender do not import each other."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PURE_MODULES = ["headroom.names", "headroom.quantity", "headroom.demand", "headroom.report",
                "headroom.fit", "headroom.capacity"]
FORBIDDEN = ("flask", "kubernetes", "pynvml")


def test_pure_modules_import_no_client_library() -> None:
    # A fresh interpreter, so nothing another test imported can hide an import.
    code = (
        f"import sys\nfor m in {PURE_MODULES!r}: __import__(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "", f"pure modules pulled in: {result.stdout.strip()}"


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_webhook_and_extender_do_not_import_each_other() -> None:
    assert "extender" not in _imports("webhook")
    assert "webhook" not in _imports("extender")


def test_the_checker_sees_imports() -> None:
    # The AST walk must find what is there, or the test above proves nothing.
    assert {"headroom", "kubernetes"} <= _imports("kubeapi")
