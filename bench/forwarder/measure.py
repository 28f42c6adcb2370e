"""Measuring tools for the forwarder benchmark: /proc sampling, a raw timestamping pty reader, a paced MQTT
publisher process, unique SPARTN frames and frame matching (publish time -> arrival time on the pty)."""

from __future__ import annotations

import bisect
import contextlib
import multiprocessing as mp
import os
import re
import select
import statistics
import struct
import subprocess
import threading
import time
import tty
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---------------------------------------------------------------- /proc


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime (all threads, incl. exited ones) of the processes, in clock ticks."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def wakeups(pids: list[int], kinds: tuple[str, ...] = ("voluntary", "nonvoluntary")) -> int:
    """Context switches of every thread of the processes: voluntary ones (the thread went to sleep, to be woken:
    how often it wakes up) and nonvoluntary ones (preempted by other work while running)."""
    total = 0
    prefixes = tuple(f"{k}_ctxt_switches" for k in kinds)
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
                        if line.startswith(prefixes):
                            total += int(line.split()[1])
    return total


def per_thread(pid: int) -> dict[int, tuple[int, int]]:
    """tid -> (voluntary context switches, i.e. wakeups; ns on CPU) of each live thread of one process."""
    out = {}
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines()
                switches = sum(int(ln.split()[1]) for ln in lines if ln.startswith("voluntary_ctxt"))
                ns = int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
                out[int(task)] = (switches, ns)
    return out


def cpu_ns(pids: list[int]) -> int:
    """Time on CPU of every live thread of the processes, in ns (/proc/<pid>/task/<tid>/schedstat): finer than
    the 10 ms clock ticks of utime+stime, which a client near idle uses only a few of in a minute."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total


def tcp_counters(pids: list[int]) -> dict[str, int]:
    """Kernel counters (`ss -tinp`) of the TCP connections the processes hold: payload bytes each way (TLS records,
    MQTT/HTTP framing, keepalives, GGA) and segments each way (each adds ~52 bytes of IPv4+TCP header on the wire)."""
    out = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=False).stdout
    want = {f"pid={p}," for p in pids}
    totals = {"bytes_sent": 0, "bytes_received": 0, "segs_out": 0, "segs_in": 0}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if not any(w in line for w in want) or i + 1 >= len(lines):
            continue
        info = lines[i + 1]
        for key in totals:
            m = re.search(rf"\b{key}:(\d+)", info)
            if m:
                totals[key] += int(m.group(1))
    return totals


def mem_kb(pids: list[int]) -> tuple[int, int]:
    """(VmRSS, VmHWM) summed over the processes, in KiB."""
    rss = hwm = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1])
    return rss, hwm


class ProcSampler:
    """Samples a process tree once per `interval` between start() and stop(): CPU% over the window from
    utime+stime, RSS every sample, and the peak (VmHWM, which also covers start-up) at the end."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.rss_samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_percent = 0.0
        self.cpu_ns_percent = 0.0
        self.net: dict[str, int] = {}
        self.threads: list[tuple[float, float]] = []
        self.wakeups_per_s = 0.0
        self.voluntary_per_s = 0.0
        self.peak_kb = 0
        self.window = 0.0

    def start(self) -> ProcSampler:
        self._pids = process_tree(self.pid)
        self._t0 = time.monotonic()
        self._ticks0 = cpu_ticks(self._pids)
        self._wake0 = wakeups(self._pids)
        self._vol0 = wakeups(self._pids, ("voluntary",))
        self._ns0 = cpu_ns(self._pids)
        self._net0 = tcp_counters(self._pids)
        self._threads0 = per_thread(self.pid)
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._pids = process_tree(self.pid)
            rss, _ = mem_kb(self._pids)
            if rss:
                self.rss_samples.append(rss)

    def stop(self) -> ProcSampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        ticks = cpu_ticks(self._pids)
        wake = wakeups(self._pids)
        ns = cpu_ns(self._pids)
        net = tcp_counters(self._pids)
        self.window = time.monotonic() - self._t0
        self.cpu_ns_percent = 100.0 * (ns - self._ns0) / 1e9 / self.window
        self.net = {k: net[k] - self._net0[k] for k in net}
        end = per_thread(self.pid)
        # threads alive over the whole window, in start order (tid): wakeups/s and CPU %
        self.threads = [
            ((end[t][0] - a[0]) / self.window, 100.0 * (end[t][1] - a[1]) / 1e9 / self.window)
            for t, a in sorted(self._threads0.items())
            if t in end
        ]
        self.wakeups_per_s = (wake - self._wake0) / self.window
        self.voluntary_per_s = (wakeups(self._pids, ("voluntary",)) - self._vol0) / self.window
        self.cpu_percent = 100.0 * (ticks - self._ticks0) / CLK_TCK / self.window
        rss, hwm = mem_kb(self._pids)
        if rss:
            self.rss_samples.append(rss)
        self.peak_kb = max([hwm, *self.rss_samples])
        return self

    @property
    def steady_kb(self) -> int:
        return int(statistics.median(self.rss_samples)) if self.rss_samples else 0


# ---------------------------------------------------------------- raw pty reader (own process)


def _reader_main(conn, out_prefix: str) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # a byte pipe, like a CDC-ACM port; the slave stays open here so the pty never hangs up
    conn.send(os.ttyname(slave))
    stop = False
    with open(out_prefix + ".bin", "wb", buffering=0) as fb, open(out_prefix + ".idx", "wb", buffering=0) as fi:
        while not stop:
            ready, _, _ = select.select([master, conn], [], [], 0.5)
            if master in ready:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # EIO while no writer is attached
                    time.sleep(0.01)
                    continue
                now = time.monotonic()
                fb.write(data)
                fi.write(struct.pack("<dQ", now, len(data)))
            if conn in ready:
                stop = conn.recv() == "stop"
    os.close(master)
    os.close(slave)
    conn.send("stopped")


class RawPtyReader:
    """A pty whose master side is read by a separate process that stores every chunk with its CLOCK_MONOTONIC
    arrival time (no parsing, so it keeps up with MB/s and adds no bias). `slave_path` goes to the client."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.prefix = str(workdir / name)
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_reader_main, args=(child, self.prefix), daemon=True)
        self._proc.start()
        self.slave_path: str = self._conn.recv()

    def data(self) -> tuple[bytes, list[float], list[int]]:
        """All bytes so far, and per chunk its arrival time and cumulative end offset."""
        raw = Path(self.prefix + ".bin").read_bytes()
        idx = Path(self.prefix + ".idx").read_bytes()
        times, ends, total = [], [], 0
        for t, n in struct.iter_unpack("<dQ", idx[: len(idx) // 16 * 16]):
            total += n
            times.append(t)
            ends.append(total)
        return raw[:total], times, ends

    def total_bytes(self) -> int:
        with contextlib.suppress(OSError):
            return os.path.getsize(self.prefix + ".bin")
        return 0

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self._conn.send("stop")
                if self._conn.poll(5):
                    self._conn.recv()
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)


def match_frames(
    frames: list[bytes], raw: bytes, times: list[float], ends: list[int], *, start: int = 0, window: int = 1 << 18
) -> tuple[list[float | None], int]:
    """Arrival time of each frame (None = not found byte-exact) searching in order from `start`; returns the
    times and the offset after the last frame found. A frame arrives when the chunk holding its last byte does."""
    out: list[float | None] = []
    cursor = start
    for frame in frames:
        pos = raw.find(frame, cursor, cursor + window + len(frame))
        if pos < 0:
            out.append(None)
            continue
        cursor = pos + len(frame)
        out.append(times[bisect.bisect_left(ends, cursor)])
    return out, cursor


# ---------------------------------------------------------------- unique SPARTN frames


def _crc24_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc = ((crc << 1) ^ 0x864CFB) if crc & 0x800000 else (crc << 1)
        table.append(crc & 0xFFFFFF)
    return table


_CRC24 = _crc24_table()


def crc24(data: bytes) -> int:
    """Table-driven CRC-24 (poly 0x864CFB, init 0): SPARTN crc_type 2, the same value frames.spartn_message_crc
    gives, ~10x faster for bulk frame generation."""
    crc = 0
    table = _CRC24
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ table[((crc >> 16) ^ byte) & 0xFF]
    return crc


class FrameFactory:
    """Valid, unique SPARTN frames (CRC-24) whose sizes follow `sizes` (e.g. a capture's), each carrying a
    sequence number in its first 4 payload bytes, so every frame can be found byte-exact on the pty."""

    def __init__(self, sizes: list[int], frames_module) -> None:
        self.sizes = sizes
        self._templates: dict[int, bytes] = {}
        self._F = frames_module
        self.seq = 0

    def _template(self, size: int) -> bytes:
        if size not in self._templates:
            overhead = len(self._F.spartn_frame(0, 0, b"", crc_type=2, time_tag_32=False, time_tag=100))
            payload = os.urandom(max(size - overhead, 8))
            self._templates[size] = self._F.spartn_frame(0, 0, payload, crc_type=2, time_tag_32=False, time_tag=100)
        return self._templates[size]

    def make(self, count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            tpl = self._template(self.sizes[self.seq % len(self.sizes)])
            n_data = ((tpl[1] & 0x01) << 9) | (tpl[2] << 1) | (tpl[3] >> 7)
            pstart = len(tpl) - 3 - n_data
            body = tpl[1:pstart] + struct.pack(">I", self.seq) + tpl[pstart + 4 : -3]
            out.append(b"\x73" + body + crc24(body).to_bytes(3, "big"))
            self.seq += 1
        return out


# ---------------------------------------------------------------- paced MQTT publisher (own process)


def _publisher_main(conn, tls: dict, host: str, port: int) -> None:
    import paho.mqtt.client as mqtt  # noqa: PLC0415 - imported in the child process only

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.tls_set(ca_certs=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *a, **k: connected.set()
    client.connect(host, port, keepalive=30)
    client.loop_start()
    conn.send(connected.wait(10))
    while True:
        job = conn.recv()
        if job is None:
            break
        topic, frames, rate = job
        cum, total = [], 0
        for frame in frames:
            cum.append(total)
            total += len(frame)
        sent, info = [], None
        start = time.monotonic()
        for i, frame in enumerate(frames):
            due = start + cum[i] / rate
            while True:
                now = time.monotonic()
                if now >= due:
                    break
                time.sleep(min(due - now, 0.002))
            sent.append(time.monotonic())
            info = client.publish(topic, frame, qos=0)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(30)  # QoS 0: returns once the last message is written to the socket
        conn.send((sent, time.monotonic()))
    client.loop_stop()
    client.disconnect()


class PacedPublisher:
    """A separate process publishing lists of frames (one per MQTT message) at a byte rate with the broker's
    publisher identity; returns each frame's publish time (CLOCK_MONOTONIC, just before publish())."""

    def __init__(self, tls: dict, host: str, port: int) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_publisher_main, args=(child, tls, host, port), daemon=True)
        self._proc.start()
        if not self._conn.recv():
            raise RuntimeError("bench publisher could not connect to the broker")

    def publish(self, topic: str, frames: list[bytes], rate: float) -> list[float]:
        """Blocks until all are published; `flushed` is when the last one left the publisher's socket."""
        self._conn.send((topic, frames, rate))
        sent, self.flushed = self._conn.recv()
        return sent

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(None)
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


# ---------------------------------------------------------------- stats


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100)."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)
