"""Which NVIDIA XID errors make a GPU unhealthy, and for how long (pure).

NVML reports every XID the driver logs as a "critical XID" event, including the ones an
application causes on its own (13 graphics engine exception, 31 MMU fault, 43 GPU stopped
processing, 45 preemptive cleanup, 68 video processor exception): those say nothing about the GPU
and are ignored. The XIDs below mean the hardware or its firmware is in trouble and the GPU needs a
reset, a drain, or at least watching, following NVIDIA's XID catalogue. One marks the GPU
unhealthy for the hold period after it was seen; a later critical XID extends the hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from headroom.clock import format_time

CRITICAL_XIDS: Final[Mapping[int, str]] = {
    48: "double-bit ECC error",
    61: "internal micro-controller breakpoint/warning",
    62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping event",
    64: "ECC page retirement or row remapping failure",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
    140: "unrecovered ECC error",
    # NVML's value for an XID the driver could not classify: treated as critical, since an
    # unknown hardware error is not one to schedule new work onto.
    999: "unknown XID",
}

DEFAULT_HOLD_SECONDS: Final = 600.0


class XidHolds:
    """The critical XIDs seen per GPU (by UUID) and until when each keeps that GPU unhealthy."""

    def __init__(self, hold_seconds: float = DEFAULT_HOLD_SECONDS) -> None:
        self.hold_seconds = hold_seconds
        self._holds: dict[str, tuple[float, str]] = {}  # uuid -> (until, reason)

    def record(self, gpu: str, xid: int, *, now_unix_seconds: float) -> bool:
        """Note an XID on `gpu`; True when it is critical (and so now holds the GPU)."""
        what = CRITICAL_XIDS.get(xid)
        if what is None or self.hold_seconds <= 0:
            return False
        until = now_unix_seconds + self.hold_seconds
        previous = self._holds.get(gpu)
        if previous is None or previous[0] <= until:
            self._holds[gpu] = (
                until,
                f"critical XID {xid} ({what}) at "
                f"{format_time(now_unix_seconds)}; unhealthy until "
                f"{format_time(until)}",
            )
        return True

    def reason(self, gpu: str, *, now_unix_seconds: float) -> str | None:
        """Why `gpu` is held unhealthy now, or None once its hold has passed."""
        held = self._holds.get(gpu)
        if held is None:
            return None
        if now_unix_seconds >= held[0]:
            del self._holds[gpu]
            return None
        return held[1]
