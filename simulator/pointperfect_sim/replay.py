"""Replayers for the lab: publish keys and SPARTN to the broker as the real service does, and feed the caster.

Sources are synthetic frames (`frames.SpartnSchedule`, real cadence) or a capture file split into SPARTN frames.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt

from . import frames as F

DEFAULT_TOPICS = {
    "keys": "/pp/ubx/0236/ip",
    "json_keys": "/pp/key/ip",
    "corrections": "/pp/ip/eu",
    "mga": "/pp/ubx/mga",
    "frequencies": "/pp/frequencies/Lb",
}


def plan_topics(plan: str = "ip", region: str | None = "eu") -> dict:
    """The replayer's topic names for a plan (u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json,
    semuconsulting/pygnssutils TOPIC_KEY/TOPIC_DATA/TOPIC_FREQ): ip: /pp/ubx/0236/ip, /pp/key/ip, /pp/ip/<r>;
    ip+lband: /pp/ubx/0236/Lb, /pp/key/Lb, /pp/Lb/<r>; lband: the Lb key topics and no correction topic (None)."""
    stream = "ip" if plan == "ip" else "Lb"
    corrections = f"/pp/{stream}/{region}" if plan != "lband" and region else None
    return dict(DEFAULT_TOPICS, keys=f"/pp/ubx/0236/{stream}", json_keys=f"/pp/key/{stream}", corrections=corrections)


REAL_RATE = 323  # bytes/s of the real continental IP stream


def capture_frames(path, loop: bool = False) -> Iterator[bytes]:
    """SPARTN frames of a capture file, optionally forever."""
    while True:
        count = 0
        for frame in F.iter_spartn_file(path):
            count += 1
            yield frame
        if not loop or count == 0:
            return


def capture_payloads(path, max_bytes: int = 1200) -> list[bytes]:
    """A capture grouped into MQTT-like payloads: consecutive frames of one message type, up to `max_bytes`
    (the real service puts several SPARTN messages in one payload)."""
    payloads: list[bytes] = []
    cur, cur_type = b"", None
    for frame in F.iter_spartn_file(path):
        msg_type = frame[1] >> 1
        if cur and (msg_type != cur_type or len(cur) + len(frame) > max_bytes):
            payloads.append(cur)
            cur = b""
        cur += frame
        cur_type = msg_type
    if cur:
        payloads.append(cur)
    return payloads


def _paced(chunks: Iterable[bytes], stop: threading.Event, bytes_per_second: float) -> Iterator[bytes]:
    """Yield chunks no faster than bytes_per_second (0 = as fast as possible)."""
    start = time.monotonic()
    sent = 0
    for chunk in chunks:
        if stop.is_set():
            return
        if bytes_per_second:
            delay = start + sent / bytes_per_second - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
        yield chunk
        sent += len(chunk)


def _synthetic(stop: threading.Event, speed: float = 1.0) -> Iterator[list[bytes]]:
    """Per stream second, the frames due (real cadence), paced by the wall clock / speed."""
    schedule = F.SpartnSchedule()
    start = time.monotonic()
    second = 0
    while not stop.is_set():
        due = start + second / speed
        delay = due - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return
        batch = schedule.epoch(second)
        if batch:
            yield batch
        second += 1


class MqttReplayer:
    """paho-mqtt publisher with the broker's publisher identity (`pp-replayer`).

    `broker` is a lab.Mosquitto or a dict {"host", "port", "ca", "cert", "key"}; `topic_map` overrides
    DEFAULT_TOPICS (keys, json_keys, corrections, mga, frequencies); `plan_topics()` gives the names of a plan.
    """

    def __init__(self, broker, topic_map: dict | None = None, client_id: str | None = None) -> None:
        info = broker.info() if hasattr(broker, "info") else dict(broker)
        self.host, self.port = info.get("host", "127.0.0.1"), int(info["port"])
        self.tls = {k: info[k] for k in ("ca", "cert", "key")}
        self.topics = dict(DEFAULT_TOPICS, **(topic_map or {}))
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"pp-replayer-{uuid.uuid4().hex[:8]}"
        )
        self.client.tls_set(ca_certs=self.tls["ca"], certfile=self.tls["cert"], keyfile=self.tls["key"])
        self.client.reconnect_delay_set(0.2, 2)
        self._connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a, **k: self._connected.clear()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.published = 0
        self.published_bytes = 0

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if not reason_code.is_failure:
            self._connected.set()

    def connect(self, timeout: float = 10.0) -> MqttReplayer:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise TimeoutError(f"replayer could not connect to {self.host}:{self.port}")
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 0, timeout: float = 5.0) -> None:
        """Publish one payload (waits until handed to the socket; auto-reconnect after a broker restart)."""
        self._connected.wait(timeout)
        info = self.client.publish(self.topic(topic), payload, qos=qos, retain=retain)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(timeout)
        self.published += 1
        self.published_bytes += len(payload)

    def topic(self, name_or_topic: str) -> str:
        return self.topics.get(name_or_topic, name_or_topic)

    def publish_all(self, items: Iterable[tuple[str, bytes]], interval: float = 0.0) -> int:
        """Publish (topic, payload) items in order, `interval` seconds apart; returns the count."""
        count = 0
        for topic, payload in items:
            if count and interval:
                time.sleep(interval)
            self.publish(topic, payload)
            count += 1
        return count

    def publish_keys(self, dynamickeys: dict, retain: bool = True) -> bytes:
        """Retained RXM-SPARTNKEY on the keys topic and the JSON form on /pp/key/ip, like the real service."""
        frame = F.spartnkey_frame(dynamickeys)
        self.publish("keys", frame, retain=retain)
        self.publish("json_keys", json.dumps({"dynamickeys": dynamickeys}).encode(), retain=retain)
        return frame

    def publish_frequencies(self, mapping: dict | None = None, retain: bool = True) -> bytes:
        """The retained L-band frequencies message on /pp/frequencies/Lb (region -> MHz; default US 1556.29 and
        EU 1545.26), shaped as `frames.frequencies_payload` documents."""
        payload = F.frequencies_payload(F.LBAND_FREQUENCIES_MHZ if mapping is None else mapping)
        self.publish("frequencies", payload, retain=retain, qos=1)
        return payload

    def clear_retained(self, topic: str) -> None:
        self.publish(topic, b"", retain=True)

    def replay_capture(
        self, path, topic: str = "corrections", bytes_per_second: float = REAL_RATE, max_payloads: int | None = None
    ) -> int:
        """Publish a capture as MQTT payloads at the given rate (blocking); returns the payload count."""
        payloads = capture_payloads(path)[:max_payloads]
        count = 0
        for payload in _paced(payloads, self._stop, bytes_per_second):
            self.publish(topic, payload)
            count += 1
        return count

    def start_stream(
        self,
        topic: str = "corrections",
        capture=None,
        loop: bool = True,
        speed: float = 1.0,
        bytes_per_second: float = REAL_RATE,
    ) -> MqttReplayer:
        """Background stream: synthetic frames at the real cadence (one payload per message type and second), or a
        capture paced at bytes_per_second * speed."""
        if capture:

            def run() -> None:
                source = capture_frames(capture, loop)
                for frame in _paced(source, self._stop, bytes_per_second * speed):
                    self.publish(topic, frame)

        else:

            def run() -> None:
                for batch in _synthetic(self._stop, speed):
                    for msg_type in sorted({f[1] >> 1 for f in batch}):
                        self.publish(topic, b"".join(f for f in batch if f[1] >> 1 == msg_type))

        thread = threading.Thread(target=run, name="mqtt-replayer", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self.client.loop_stop()
        with contextlib.suppress(Exception):
            self.client.disconnect()

    def __enter__(self) -> MqttReplayer:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.stop()


class CasterFeeder:
    """Feeds a lab.Caster continuously: synthetic frames at the real cadence, or a capture at a byte rate."""

    def __init__(self, caster) -> None:
        self.caster = caster
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self, capture=None, loop: bool = True, speed: float = 1.0, bytes_per_second: float = REAL_RATE
    ) -> CasterFeeder:
        def run() -> None:
            try:
                if capture:
                    for frame in _paced(capture_frames(capture, loop), self._stop, bytes_per_second * speed):
                        self.caster.feed(frame)
                else:
                    for batch in _synthetic(self._stop, speed):
                        self.caster.feed(b"".join(batch))
            except (OSError, RuntimeError):
                return  # caster stopped

        self._thread = threading.Thread(target=run, name="caster-feeder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def read_capture(path) -> list[bytes]:
    """All SPARTN frames of a capture file."""
    return list(F.iter_spartn_file(Path(path)))
