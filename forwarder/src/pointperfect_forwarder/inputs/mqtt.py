"""MQTT input (paho-mqtt): mutual TLS, key topic first, then AssistNow (full set once, then updates), the L-band
frequencies, and the one correction topic of the chosen region (switched when the region changes)."""

from __future__ import annotations

import logging
import ssl
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ..config import MqttSettings
from ..framing import SPARTN, UBX, Frame, Framer
from ..keys import parse_json_keys, spartnkey_frame
from . import AUTH_FAILED, Input

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 20.0  # seconds from TCP connect to CONNACK


def tls_context(ca_file: str | None, certificate: str, private_key: str) -> ssl.SSLContext:
    """Verified server (given CA or the system trust store) and our client certificate."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certificate, private_key)
    return ctx


class MqttInput(Input):
    kind = "mqtt"

    def __init__(self, settings: MqttSettings, ca_file: str | None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cfg = settings
        self.ca_file = ca_file
        self._framers: dict[str, Framer] = {}
        self._connected = False
        self._closed = False
        self._key_mid: int | None = None
        self._refused: str | None = None
        self._rest = False  # the topics after the key topic are subscribed
        self._corrections: str | None = None  # the one subscribed correction topic
        self._corrections_since = 0.0  # monotonic time of its subscription (the no-data watchdog starts there)
        self._mga_full = settings.assistnow_topic
        self._mga_updates = f"{settings.assistnow_topic}/updates" if settings.assistnow_topic else None

    # --- paho callbacks (run in this input's thread, inside client.loop) -------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            name = str(reason_code)
            self._refused = name
            if "authori" in name.lower() or "bad user" in name.lower():
                self.stats.set_input("auth_failed", AUTH_FAILED)
            else:
                self.stats.set_input("connecting", f"broker refused connection: {name}")
            log.warning("mqtt input: broker refused connection: %s", name)
            return
        self._connected = True
        self.stats.set_input("connected")
        self.backoff.session_started()
        log.info("mqtt input: connected to %s:%d", self.cfg.host, self.cfg.port)
        if self.cfg.key_topic:
            # keys first: their retained message is queued before any correction
            _result, self._key_mid = client.subscribe(self.cfg.key_topic, 0)
        else:
            self._subscribe_rest(client)

    def _subscribe_rest(self, client) -> None:
        topics = []
        if self._mga_full:
            wanted = self._mga_full if self.pipeline.assistnow_full_wanted() else self._mga_updates
            topics.append((wanted, 0))
        if self.cfg.frequencies_topic:
            topics.append((self.cfg.frequencies_topic, 0))
        if topics:
            client.subscribe(topics)
        self._rest = True
        self._follow_region(client)

    def _follow_region(self, client) -> None:
        """Subscribe the chosen region's correction topic; on a region switch leave the old one first."""
        wanted = self.pipeline.correction_topic()
        old = self._corrections
        if wanted == old:
            return
        if old is not None:
            client.unsubscribe(old)
            self._framers.pop(old, None)
            log.info("mqtt input: unsubscribed %s", old)
        self._corrections = wanted
        if wanted is not None:
            self._framers.pop(wanted, None)  # a fresh framer: nothing of an earlier subscription prefixes it
            self._corrections_since = time.monotonic()
            client.subscribe(wanted, 0)
            log.info("mqtt input: subscribed %s", wanted)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            msg = f"subscription refused: {', '.join(refused)}"
            self.stats.set_input(self.stats.input_state, msg)
            log.warning("mqtt input: %s", msg)
        if mid == self._key_mid:
            self._key_mid = None
            self._subscribe_rest(client)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._closed = True

    def _framer(self, topic: str, streams: tuple[str, ...]) -> Framer:
        framer = self._framers.get(topic)
        if framer is None:
            framer = self._framers[topic] = Framer(streams, on_garbage=self.stats.garbage)
        return framer

    def _on_message(self, client, userdata, message):
        topic, payload = message.topic, message.payload
        if topic == self.cfg.key_topic:
            if payload[:1] == b"{":
                try:
                    frames = [Frame(UBX, spartnkey_frame(parse_json_keys(payload)))]
                except ValueError:
                    log.warning("mqtt input: unreadable JSON keys on %s", topic)
                    return
            else:
                frames = self._framer(topic, (UBX,)).feed(payload)
            for frame in frames:
                self.stats.data_in(frame.stream, len(frame.data))
                self.pipeline.new_keys(frame)
            return
        if topic == self.cfg.frequencies_topic:
            self.pipeline.frequencies(payload)
            return
        if topic in (self._mga_full, self._mga_updates):
            for frame in self._framer(topic, (UBX,)).feed(payload):
                self.stats.data_in(frame.stream, len(frame.data))
                self.pipeline.submit(frame)
            if topic == self._mga_full:
                # full set received once: from now on only the updates
                self.pipeline.assistnow_full_done()
                client.unsubscribe(self._mga_full)
                client.subscribe(self._mga_updates, 0)
            return
        if topic != self._corrections:
            return  # still in flight from a topic left on a region switch
        framer = self._framer(topic, (SPARTN,))
        for frame in framer.feed(payload):
            self.stats.data_in(frame.stream, len(frame.data))
            self.pipeline.submit(frame)

    # --- session ---------------------------------------------------------------------------------------------------

    def _client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id, protocol=paho.MQTTv311, clean_session=True
        )
        client.tls_set_context(tls_context(self.ca_file, self.cfg.certificate, self.cfg.private_key))
        client.connect_timeout = 10.0
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def session(self) -> float | None:
        self._connected = self._closed = False
        self._refused = None
        self._key_mid = None
        self._rest = False
        self._corrections = None
        for framer in self._framers.values():
            framer.reset()  # a partial frame of the last session must not prefix this one
        try:
            client = self._client()
            client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        except ssl.SSLError as exc:
            self._tls_error(exc)
            return None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            self.stats.set_input("connecting", f"connect to {self.cfg.host}:{self.cfg.port} failed: {reason}")
            log.warning("mqtt input: connect to %s:%d failed: %s", self.cfg.host, self.cfg.port, reason)
            return None
        started = time.monotonic()
        try:
            while not self.stopping():
                self.heartbeat = time.monotonic()
                rc = client.loop(timeout=1.0)  # wakes on traffic; the timeout only bounds stop latency
                if self._refused or self._closed or rc != paho.MQTT_ERR_SUCCESS:
                    if self._connected and not self._refused:
                        self.stats.set_input("backoff", f"connection lost ({paho.error_string(rc)})")
                        log.warning("mqtt input: connection lost (%s)", paho.error_string(rc))
                    break
                if not self._connected:
                    if time.monotonic() - started > CONNECT_TIMEOUT:
                        self.stats.set_input("connecting", "no CONNACK from broker")
                        break
                    continue
                if self._rest:
                    self._follow_region(client)
                if self._corrections is None:
                    continue  # no correction topic (L-band, or no region yet): keys and frequencies come rarely
                silent = self.silent_for(self._corrections_since)
                if silent > self.no_data_timeout:
                    msg = f"no data for {silent:.0f} s: reconnecting"
                    self.stats.set_input("backoff", msg)
                    log.warning("mqtt input: %s", msg)
                    break
        except ssl.SSLError as exc:
            self._tls_error(exc)
        finally:
            try:
                client.disconnect()
                client.loop(timeout=0.1)
            except Exception:  # noqa: S110 - best effort goodbye on a connection that may be dead
                pass
            sock = client.socket()
            if sock is not None:
                sock.close()
        return None

    def _tls_error(self, exc: ssl.SSLError) -> None:
        reason = getattr(exc, "reason", None) or str(exc)
        if (
            any(
                s in str(reason).upper()
                for s in (
                    "CERTIFICATE_REVOKED",
                    "BAD_CERTIFICATE",
                    "CERTIFICATE_EXPIRED",
                    "UNKNOWN_CA",
                    "CERTIFICATE_UNKNOWN",
                )
            )
            and "VERIFY_FAILED" not in str(reason).upper()
        ):
            # the broker rejected our client certificate
            self.stats.set_input("auth_failed", AUTH_FAILED)
            log.warning("mqtt input: broker rejected the client certificate (%s): %s", reason, AUTH_FAILED)
        else:
            self.stats.set_input("connecting", f"TLS error: {reason}")
            log.warning("mqtt input: TLS error with %s:%d: %s", self.cfg.host, self.cfg.port, reason)
