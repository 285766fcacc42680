"""The extender's HTTP exchanges as the loopback carries them, for bench/scheduler.py.

kube-scheduler keeps no metric of its own per extender call (1.37: none in pkg/scheduler/metrics),
so the time the scheduler waits on each verb is read off the wire: a packet socket on `lo` with a
kernel filter passing only TCP segments to or from the extender's port, each stamped by the kernel
(SO_TIMESTAMPNS) as it crossed the loopback. An exchange runs from the request's first segment
(`POST /filter ...`, sent by the scheduler) to the segment completing the response's
Content-Length (sent by the extender): what the scheduler's HTTP client waits, less its own JSON
encoding before and decoding after. SYN segments to the port count the connections the scheduler
opened: Go's client keeps two idle ones per host, so calls beyond two at once open new ones.

Needs CAP_NET_RAW (root in the bench's container); `LoopbackTap.start` raises PermissionError
without it, and the caller reports the wire columns as unavailable.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # the loopback shows each segment twice: as sent and as received
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
PACKET_STATISTICS = 6
SOL_PACKET = 263
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # classic BPF's ancillary load of the packet type
SNAP_BYTES = 512  # enough for a request line or a response's headers; lengths come from IP
ETHERNET_HEADER_BYTES = 14
TCP_SYN, TCP_ACK = 0x02, 0x10


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter)))


def tcp_port_filter(port: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF: pass the first SNAP_BYTES of each IPv4 TCP segment to or from `port` that
    carries data or opens a connection (SYN), as received (not the loopback's outgoing copy);
    drop the rest (pure ACKs, everything else). (code, jump if true, jump if false, k) each."""
    return [
        (0x30, 0, 0, SKF_AD_PKTTYPE),  # 0 ldb: the packet's type
        (0x15, 19, 0, PACKET_OUTGOING),  # 1 the outgoing copy: drop
        (0x28, 0, 0, 12),  # 2 ldh [12]: the EtherType
        (0x15, 0, 17, 0x0800),  # 3 not IPv4: drop
        (0x30, 0, 0, 23),  # 4 ldb [23]: the IP protocol
        (0x15, 0, 15, 6),  # 5 not TCP: drop
        (0xB1, 0, 0, 14),  # 6 ldxb 4*([14]&0xf): X = the IP header's length
        (0x48, 0, 0, 14),  # 7 ldh [x+14]: the source port
        (0x15, 2, 0, port),  # 8 ours: on to 11
        (0x48, 0, 0, 16),  # 9 ldh [x+16]: the destination port
        (0x15, 0, 10, port),  # 10 not ours either: drop
        (0x50, 0, 0, 27),  # 11 ldb [x+27]: the TCP flags
        (0x45, 7, 0, TCP_SYN),  # 12 SYN: keep
        (0x50, 0, 0, 26),  # 13 ldb [x+26]: the TCP data offset ...
        (0x74, 0, 0, 4),  # 14 rsh 4
        (0x64, 0, 0, 2),  # 15 lsh 2: ... as the TCP header's length
        (0x0C, 0, 0, 0),  # 16 add x: IP + TCP headers
        (0x07, 0, 0, 0),  # 17 tax
        (0x28, 0, 0, 16),  # 18 ldh [16]: the IP total length
        (0x2D, 0, 1, 0),  # 19 longer than the headers (data): keep, else drop
        (0x06, 0, 0, SNAP_BYTES),  # 20 keep
        (0x06, 0, 0, 0),  # 21 drop
    ]


@dataclass(frozen=True)
class Exchange:
    """One request and its response, timed on the wire."""

    verb: str
    client_port: int
    started: float  # kernel time of the request's first segment
    ended: float  # of the segment completing the response

    @property
    def elapsed_ms(self) -> float:
        return 1000 * (self.ended - self.started)


@dataclass
class _Flow:
    verb: str = ""
    started: float = 0.0
    head: bytearray = field(default_factory=bytearray)  # the response's first bytes
    response_bytes: int = 0
    expected_bytes: int | None = None  # headers and body, once the headers are in


class Exchanges:
    """Segments in, exchanges out: one state per client connection (its port). A segment may be
    cut short (SNAP_BYTES): its length comes from the IP header."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.done: list[Exchange] = []
        self.connections_opened = 0
        self._flows: dict[int, _Flow] = {}

    def frame(self, stamp: float, frame: bytes) -> None:
        """One Ethernet frame (as the loopback frames IPv4) the filter passed."""
        ip = frame[ETHERNET_HEADER_BYTES:]
        ip_total = struct.unpack_from("!H", ip, 2)[0]
        ip_header = (ip[0] & 0x0F) * 4
        tcp = ip[ip_header:]
        source, destination = struct.unpack_from("!HH", tcp, 0)
        flags, tcp_header = tcp[13], (tcp[12] >> 4) * 4
        length = ip_total - ip_header - tcp_header
        payload = tcp[tcp_header:]
        if destination == self.port:
            if flags & TCP_SYN and not flags & TCP_ACK:
                self.connections_opened += 1
            self.request_segment(stamp, source, payload)
        elif source == self.port and length > 0:
            self.response_segment(stamp, destination, payload, length)

    def request_segment(self, stamp: float, client: int, payload: bytes) -> None:
        if payload.startswith(b"POST /") and client not in self._flows:
            path = payload[5:].split(b" ", 1)[0].decode("ascii", "replace")
            self._flows[client] = _Flow(verb=path.strip("/").rsplit("/", 1)[-1], started=stamp)

    def response_segment(self, stamp: float, client: int, payload: bytes, length: int) -> None:
        flow = self._flows.get(client)
        if flow is None:
            return
        if flow.expected_bytes is None and len(flow.head) == flow.response_bytes:
            flow.head += payload  # still within the headers as captured
            head, blank, _ = bytes(flow.head).partition(b"\r\n\r\n")
            if blank:
                flow.expected_bytes = len(head) + 4 + _content_length(head)
        flow.response_bytes += length
        if flow.expected_bytes is not None and flow.response_bytes >= flow.expected_bytes:
            self.done.append(Exchange(flow.verb, client, flow.started, stamp))
            del self._flows[client]


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0  # no body announced: the headers complete the response


class LoopbackTap:
    """Captures the exchanges with the extender on `port` between start() and stop(), in a
    process of its own at the lowest priority (SCHED_IDLE): it reads segments only when the CPU
    has nothing else to do, and the kernel's time stamps make its lateness harmless. stop()
    answers the exchanges; `dropped` the segments the kernel dropped (0 if none)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dropped = 0
        self._child: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Raises PermissionError when packet sockets are not allowed (no CAP_NET_RAW)."""
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.scheduler_wire", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        first = child.stdout.readline().strip()
        if first != "ready":
            child.kill()
            child.wait()
            raise PermissionError(first or "the tap exited")
        self._child = child

    def stop(self) -> Exchanges:
        exchanges = Exchanges(self.port)
        if self._child is None:
            return exchanges
        output, _ = self._child.communicate(timeout=120)  # closes stdin: the child's signal
        found = json.loads(output)
        exchanges.done = [Exchange(**e) for e in found["exchanges"]]
        exchanges.connections_opened = found["connections_opened"]
        self.dropped = found["dropped"]
        return exchanges


def open_socket(port: int) -> tuple[socket.socket, object]:
    """The packet socket on `lo` with the filter attached; the filter program, which must stay
    alive as long as the socket does."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        program = tcp_port_filter(port)
        instructions = (_SockFilter * len(program))(*(_SockFilter(*i) for i in program))
        fprog = _SockFprog(len(program), instructions)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
        sock.bind(("lo", 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:  # past net.core.rmem_max, as root may
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 * 2**20)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 2**20)
    except BaseException:
        sock.close()
        raise
    return sock, instructions


def capture(sock: socket.socket, exchanges: Exchanges, stop: threading.Event) -> None:
    """Read segments until `stop` is set and none are left."""
    space = socket.CMSG_SPACE(16)
    sock.settimeout(0.2)
    while True:
        try:
            frame, ancillary, _, _ = sock.recvmsg(SNAP_BYTES + 64, space)
        except TimeoutError:
            if stop.is_set():
                return
            continue
        exchanges.frame(_stamp(ancillary), frame)


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return float(seconds + nanoseconds / 1e9)
    return time.time()


def main(argv: list[str]) -> int:
    """The tap's process: `ready` once capturing, then the exchanges as JSON once stdin closes."""
    port = int(argv[0])
    try:
        sock, _program = open_socket(port)
    except PermissionError as exc:
        print(f"packet socket refused: {exc}", flush=True)
        return 1
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    exchanges, stop = Exchanges(port), threading.Event()

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    print("ready", flush=True)
    capture(sock, exchanges, stop)
    stats = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    sock.close()
    done = [dataclasses.asdict(e) for e in exchanges.done]
    dropped = struct.unpack("II", stats)[1]
    print(
        json.dumps(
            {
                "exchanges": done,
                "connections_opened": exchanges.connections_opened,
                "dropped": dropped,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
