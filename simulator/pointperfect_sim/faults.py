"""Faults and their judgement: traffic with provenance, delivery analysis, RSS and status sampling, and a network
namespace of our own for a network cut. Used by tests/reliability and scripts/soak.py."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from . import frames as F
from .daemon import ForwarderDaemon


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- traffic with provenance


@dataclass
class Sent:
    t: float  # monotonic publish time
    raw: bytes


class _Loop:
    """`_run` in a daemon thread from start() until stop() sets `_stop`."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Traffic(_Loop):
    """Publishes unique SPARTN frames at `rate` frames/s through `send(bytes)`, remembering what was sent and when.
    A send that raises is not recorded (the frame never left this side)."""

    def __init__(self, send, rate: float = 10.0, size: int = 64):
        super().__init__("traffic")
        self.send = send
        self.rate = rate
        self.size = size
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def _run(self) -> None:
        period = 1.0 / self.rate
        nxt = time.monotonic()
        while not self._stop.is_set():
            frame = F.synthetic_spartn(1, size=self.size)[0]
            try:
                self.send(frame)
            except Exception:  # noqa: S110 - a send that fails is not recorded (see the class doc)
                pass
            else:
                with self._lock:
                    self.sent.append(Sent(time.monotonic(), frame))
            nxt += period
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def snapshot(self) -> list[Sent]:
        with self._lock:
            return list(self.sent)


def mqtt_sender(replayer, topic: str = "/pp/ip/eu"):
    """send(frame) for Traffic: one paho publish (QoS 0), raising when the publisher is not connected."""

    def send(frame: bytes) -> None:
        info = replayer.client.publish(topic, frame, qos=0)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise OSError(f"publish rc {info.rc}")

    return send


def caster_sender(caster):
    def send(frame: bytes) -> None:
        caster.feed(frame)

    return send


# ---------------------------------------------------------------- analysis


@dataclass
class Delivery:
    published: int
    delivered: int
    foreign: int  # delivered frames that were never published (spliced, corrupted, invented)
    in_order: bool
    garbage_bytes: int
    lost_in_window: int  # published in [fault_start, fault_end + recovery] and never delivered
    recovery_s: float | None  # fault end -> first delivery of a frame published after the fault ended
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def analyse(traffic: Traffic, receiver, fault_start: float, fault_end: float, since: float = 0.0) -> Delivery:
    sent = [s for s in traffic.snapshot() if s.t >= since]
    index = {s.raw: i for i, s in enumerate(sent)}
    got = [f for f in receiver.frames_of("spartn") if f.t >= since]
    positions = [index.get(f.raw) for f in got]
    known = [p for p in positions if p is not None]
    delivered = set(known)
    recovery = None
    for f, p in zip(got, positions, strict=True):
        if p is not None and sent[p].t >= fault_end:
            recovery = round(max(0.0, f.t - fault_end), 2)
            break
    horizon = fault_end + (recovery or 0.0)
    lost = sum(1 for i, s in enumerate(sent) if fault_start <= s.t <= horizon and i not in delivered)
    return Delivery(
        published=len(sent),
        delivered=len(delivered),
        foreign=positions.count(None),
        in_order=known == sorted(known) and len(known) == len(delivered),
        garbage_bytes=receiver.garbage_bytes,
        lost_in_window=lost,
        recovery_s=recovery,
    )


def assert_whole(d: Delivery) -> None:
    """No frame split, spliced or interleaved; delivered frames are published ones, once each, in order."""
    assert d.garbage_bytes == 0, d
    assert d.foreign == 0, d
    assert d.in_order, d


class Sampler(_Loop):
    """Samples the status file, RSS and (every `metrics_every` s) the metrics of a daemon every `interval` s."""

    def __init__(self, daemon: ForwarderDaemon, interval: float = 0.5, metrics_every: float = 2.0):
        super().__init__("sampler")
        self.daemon = daemon
        self.interval = interval
        self.metrics_every = metrics_every
        self.samples: list[dict] = []

    def _run(self) -> None:
        last_metrics = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            sample = {"t": now, "rss_kb": rss_kb(self.daemon.pid), "status": self.daemon.status()}
            if now - last_metrics >= self.metrics_every:
                last_metrics = now
                with contextlib.suppress(Exception):
                    sample["metrics"] = self.daemon.metrics()
            self.samples.append(sample)
            self._stop.wait(self.interval)

    def between(self, t0: float, t1: float) -> list[dict]:
        return [s for s in self.samples if t0 <= s["t"] <= t1 and s["status"]]

    def rss_range(self) -> tuple[int, int]:
        values = [s["rss_kb"] for s in self.samples if s["rss_kb"]]
        return min(values), max(values)


# ---------------------------------------------------------------- network namespace (our own test host)

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


class NetNS:
    """A network namespace with a veth pair to the host (host 10.231.N.1/30, namespace 10.231.N.2/30).

    The forwarder runs inside (`prefix`); it reaches the loopback-only broker through two relays of this process:
    namespace 127.0.0.1:port -> veth -> host 10.231.N.1:port2 -> host 127.0.0.1:broker. `cut()` takes the host end
    of the veth down, so only this namespace loses its network; `restore()` brings it back."""

    def __init__(self, index: int = 7):
        self.name = f"pprel{os.getpid() % 10000}x{index}"
        self.host_if, self.ns_if = f"pph{os.getpid() % 10000}x{index}", f"ppn{os.getpid() % 10000}x{index}"
        self.host_ip, self.ns_ip = f"10.231.{index}.1", f"10.231.{index}.2"
        self.relays: list[Relay] = []

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)

    def up(self) -> NetNS:
        self._ip("netns", "add", self.name)
        try:
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            self._ip("link", "set", self.ns_if, "netns", self.name)
            self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            self._ip("-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            self._ip("-n", self.name, "link", "set", self.ns_if, "up")
            self._ip("-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.down()
            raise
        return self

    def call(self, fn):
        """Run fn() in a thread switched into the namespace (sockets it creates live there)."""
        box: dict = {}

        def run() -> None:
            fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                os.close(fd)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(30)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def expose(self, target_port: int) -> int:
        """Make host 127.0.0.1:target_port reachable as 127.0.0.1:<returned port> inside the namespace."""
        outer = Relay(self._listen(self.host_ip), ("127.0.0.1", target_port), self).start()
        inner = self.call(lambda: Relay(self._listen("127.0.0.1"), (self.host_ip, outer.port), self, inside=True))
        self.call(inner.start)  # its threads are created inside, so its upstream sockets are too
        self.relays += [outer, inner]
        return inner.port

    @staticmethod
    def _listen(host: str) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen(16)
        return sock

    def cut(self) -> None:
        self._ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        self._ip("link", "set", self.host_if, "up")

    def down(self) -> None:
        for relay in self.relays:
            relay.stop()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=20, check=False)


class Relay:
    """A byte pipe: accept on `listener`, connect to `upstream`, copy both ways; either end closing closes both."""

    def __init__(self, listener: socket.socket, upstream: tuple[str, int], ns: NetNS, inside: bool = False):
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.upstream = upstream
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> Relay:
        threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True).start()
        return self

    def _accept(self) -> None:
        self.listener.settimeout(0.5)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            up.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._conns += [client, up]
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        src.close()  # each pump closes its source; the peer pump closes the other end

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
