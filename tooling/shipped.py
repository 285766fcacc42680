"""The shipped configuration, with only what a run on loopback must fill in.

The e2e tests and the demo run Headroom's install as users get it: the kube-scheduler profile and
the MutatingWebhookConfiguration from `manifests/`, unmodified. Processes there run on loopback
instead of in pods, so three kinds of value are filled in, and nothing else: addresses (the
extender's URL, a webhook's URL in place of its Service), kubeconfig paths, and the caBundle.
`differences()` lists every other change, and a test asserts there is none.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
SCHEDULER_CONFIG = MANIFESTS / "extender" / "kube-scheduler-config.yaml"
WEBHOOK_CONFIG = MANIFESTS / "webhook" / "mutatingwebhookconfiguration.yaml"

JsonDict = dict[str, Any]
Path_ = tuple[str | int, ...]


def load(path: Path) -> JsonDict:
    loaded: JsonDict = yaml.safe_load(path.read_text())
    return loaded


def scheduler_config(*, extender_url: str, kubeconfig: Path) -> JsonDict:
    """The shipped KubeSchedulerConfiguration calling the extender at `extender_url` (e.g.
    http://127.0.0.1:PORT) and reaching the API server through `kubeconfig`."""
    config = load(SCHEDULER_CONFIG)
    config.setdefault("clientConnection", {})["kubeconfig"] = str(kubeconfig)
    for extender in config["extenders"]:
        extender["urlPrefix"] = extender_url
    return config


def webhook_configuration(*, base_url: str, ca_bundle: str) -> JsonDict:
    """The shipped MutatingWebhookConfiguration calling each webhook at `base_url` + its path
    (e.g. https://127.0.0.1:PORT) instead of through its Service, trusting `ca_bundle`."""
    config = load(WEBHOOK_CONFIG)
    for hook in config["webhooks"]:
        path = hook["clientConfig"]["service"].get("path", "")
        hook["clientConfig"] = {"url": f"{base_url}{path}", "caBundle": ca_bundle}
    return config


# What may differ from the file (each path with all below it), "*" for any list index.
FILLED_IN = {
    "scheduler": frozenset({("clientConnection", "kubeconfig"), ("extenders", "*", "urlPrefix")}),
    "webhook": frozenset(
        {
            ("webhooks", "*", "clientConfig", "service"),
            ("webhooks", "*", "clientConfig", "url"),
            ("webhooks", "*", "clientConfig", "caBundle"),
        }
    ),
}


def differences(shipped: Any, used: Any, *, allowed: frozenset[Path_] = frozenset()) -> list[str]:
    """Every leaf where `used` differs from `shipped`, outside the `allowed` paths, as
    "a.b[0].c: shipped X, used Y"; [] when the only changes are the allowed ones."""
    found = []
    for path, before, after in _diff(copy.deepcopy(shipped), copy.deepcopy(used), ()):
        if not any(_matches(pattern, path) for pattern in allowed):
            found.append(f"{_dotted(path)}: shipped {before!r}, used {after!r}")
    return found


_MISSING = object()


def _diff(a: Any, b: Any, path: Path_) -> Iterator[tuple[Path_, Any, Any]]:
    # An object present on one side only is compared leaf by leaf with an empty one.
    if (a is _MISSING and isinstance(b, dict)) or (b is _MISSING and isinstance(a, dict)):
        a, b = ({} if a is _MISSING else a), ({} if b is _MISSING else b)
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            yield from _diff(a.get(key, _MISSING), b.get(key, _MISSING), (*path, key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, (*path, index))
    elif a != b:
        yield path, (None if a is _MISSING else a), (None if b is _MISSING else b)


def _matches(pattern: Path_, path: Path_) -> bool:
    """`path` is `pattern` or inside it ("*" stands for any list index)."""
    return len(path) >= len(pattern) and all(
        (p == "*" and isinstance(q, int)) or p == q for p, q in zip(pattern, path, strict=False)
    )


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
