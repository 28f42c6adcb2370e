"""MQTT input (paho-mqtt): mutual TLS, key topic first, then AssistNow (full set once, then updates), the L-band
frequencies, and the one correction topic of the chosen region (switched when the region changes).

State: `subscribing` from CONNACK until every subscription of the session so far is acknowledged (SUBACK), then
`connected`. A correction topic subscribed later (a region chosen after connecting, a region switch) puts the session
back to `subscribing` until its SUBACK; `connected_since` keeps the session's first `connected`. A refused key,
correction or frequencies subscription keeps it `subscribing` (with the refusal in `last_error`), and a session still
`subscribing` after `watchdog.no_data_timeout` is closed and reconnected. A refused AssistNow subscription is only
reported: it does not stop corrections."""

from __future__ import annotations

import logging
import ssl
import time
from typing import NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.exception import MalformedPacket

from ..config import MqttSettings
from ..framing import SPARTN, UBX, Frame, Framer
from ..keys import parse_json_keys, spartnkey_frame
from . import AUTH_FAILED, Input, tls_context

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 20.0  # seconds from TCP connect to CONNACK
PACKETS_PER_TURN = 64  # packets read in one turn while TLS holds decrypted bytes (no select per packet)
BATCH_BYTES = 8192  # corrections read in one turn go to the writer together once this much is collected
RECV_SIZE = 16384  # bytes asked of the socket per read: a TLS read gives at most one record (16 kB)
PUBLISH_QOS0, PUBLISH_QOS_MASK = 0x30, 0xF6  # fixed-header byte of a QoS 0 PUBLISH (DUP and RETAIN bits ignored)


class Publish(NamedTuple):
    """A QoS 0 PUBLISH as `on_message` reads it (paho's MQTTMessage offers the same two fields)."""

    topic: str
    payload: bytes


class BulkReadClient(paho.Client):
    """paho's client with a reader that takes what the socket has (a whole TLS record) and handles every complete
    packet in it in one call. A QoS 0 PUBLISH (all the corrections) goes straight to `on_message`, without paho's
    per-packet work (four socket reads, a message object, a topic-filter walk, two locks and a debug log: about half
    the input's CPU at MB/s). Every other packet (CONNACK, SUBACK, PINGRESP, another QoS) goes to paho's own handler.
    Written against paho-mqtt 2.2.0's internals (pinned; the tests check the version)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rx = bytearray()  # bytes read and not yet handled: at most an incomplete packet between reads

    def reconnect(self) -> paho.MQTTErrorCode:
        self._rx.clear()  # as paho drops its partial packet: nothing of the last connection prefixes the next
        return super().reconnect()

    def _packet_read(self) -> paho.MQTTErrorCode:
        try:
            data = self._sock_recv(RECV_SIZE)
        except BlockingIOError:
            return paho.MQTT_ERR_AGAIN
        except OSError:  # as paho: a failed read (timeout included) is a lost connection
            return paho.MQTT_ERR_CONN_LOST
        if not data:
            return paho.MQTT_ERR_CONN_LOST
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        buf = self._rx
        buf += data
        pos = 0
        try:
            while (packet := self._next_packet(buf, pos)) is not None:  # an incomplete one waits for a later read
                command, start, end = packet
                pos = end
                rc = self._handle(command, buf, start, end)
                if rc != paho.MQTT_ERR_SUCCESS:
                    return rc
        except MalformedPacket:
            return paho.MQTT_ERR_PROTOCOL
        finally:
            del buf[:pos]
        return paho.MQTT_ERR_SUCCESS

    @staticmethod
    def _next_packet(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
        """(command, body start, body end) of the complete packet at `pos`; None if it is not all there yet."""
        size, shift, i = len(buf), 0, pos + 1
        length = 0
        while True:
            if i >= size:
                return None
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:  # as paho: more than 4 remaining-length bytes
                raise MalformedPacket("remaining length longer than 4 bytes")
        if i + length > size:
            return None
        return buf[pos], i, i + length

    def _handle(self, command: int, buf: bytearray, start: int, end: int) -> paho.MQTTErrorCode:
        if command & PUBLISH_QOS_MASK == PUBLISH_QOS0 and end - start >= 2 and self._protocol != paho.MQTTv5:
            topic_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
            if topic_end <= end:
                try:
                    topic = buf[start + 2 : topic_end].decode()
                except UnicodeDecodeError:
                    pass  # paho's handler reports it
                else:
                    with self._in_callback_mutex:  # as paho: a callback's subscribe is written after it, not inside
                        self.on_message(self, self._userdata, Publish(topic, bytes(buf[topic_end:end])))
                    return paho.MQTT_ERR_SUCCESS
        packet = self._in_packet
        packet.update(command=command, packet=buf[start:end], remaining_length=end - start, have_remaining=1)
        try:
            return self._packet_handle()
        except MalformedPacket:
            return paho.MQTT_ERR_PROTOCOL
        finally:
            packet.update(command=0, packet=bytearray(), remaining_length=0, have_remaining=0)


class MqttInput(Input):
    kind = "mqtt"
    cfg: MqttSettings

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._framers: dict[str, Framer] = {}
        self._messages = 0  # PUBLISH packets read (the read loop goes on while they come)
        self._batch: list[Frame] | None = None  # corrections of this read turn, submitted together (None: at once)
        self._batch_bytes = 0
        self._connected = False
        self._closed = False
        self._key_mid: int | None = None
        # SUBSCRIBE packets awaiting their SUBACK: mid -> [(topic, essential)], in the packet's order
        self._pending: dict[int, list[tuple[str, bool]]] = {}
        self._denied: dict[str, str] = {}  # essential topics the broker refused: topic -> reason code
        self._subscribing_since = 0.0  # monotonic start of the current `subscribing` phase
        self._refused: str | None = None
        self._rest = False  # the topics after the key topic are subscribed
        self._corrections: str | None = None  # the one subscribed correction topic
        self._corrections_since = 0.0  # monotonic time of its subscription (the no-data watchdog starts there)
        self._mga_full = self.cfg.assistnow_topic
        self._mga_updates = f"{self._mga_full}/updates" if self._mga_full else None

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
        self._subscribing()
        self.backoff.session_started()
        log.info("mqtt input: connected to %s:%d, subscribing", self.cfg.host, self.cfg.port)
        if self.cfg.key_topic:
            # keys first: their retained message is queued before any correction
            self._key_mid = self._subscribe(client, [(self.cfg.key_topic, True)])
        else:
            self._subscribe_rest(client)
        self._update_state()

    def _subscribe(self, client, topics: list[tuple[str, bool]]) -> int | None:
        """One SUBSCRIBE (QoS 0) of (topic, essential) pairs, tracked until its SUBACK; returns its mid."""
        result, mid = client.subscribe([(topic, 0) for topic, _essential in topics])
        if result == paho.MQTT_ERR_SUCCESS:  # else the connection is gone: the session loop ends it
            self._pending[mid] = list(topics)
            return mid
        return None

    def _subscribing(self) -> None:
        if self.stats.input_state != "subscribing":
            self._subscribing_since = time.monotonic()
            self.stats.set_input("subscribing")

    def _update_state(self) -> None:
        """`connected` once nothing awaits a SUBACK and no essential subscription was refused."""
        if self._pending or self._denied:
            self._subscribing()
        elif self.stats.input_state == "subscribing":
            self.stats.set_input("connected")
            log.info("mqtt input: subscriptions acknowledged: connected")

    def _subscribe_rest(self, client) -> None:
        topics = []
        if self._mga_full:
            wanted = self._mga_full if self.pipeline.assistnow_full_wanted() else self._mga_updates
            topics.append((wanted, False))  # optional: a plan without AssistNow still gets its corrections
        if self.cfg.frequencies_topic:
            topics.append((self.cfg.frequencies_topic, True))
        if topics:
            self._subscribe(client, topics)
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
            self._denied.pop(old, None)
            for topics in self._pending.values():  # a SUBACK still due for the old topic no longer matters
                topics[:] = [(t, essential and t != old) for t, essential in topics]
            self.stats.corrections_subscribed = None
            log.info("mqtt input: unsubscribed %s", old)
        self._corrections = wanted
        if wanted is not None:
            self._framers.pop(wanted, None)  # a fresh framer: nothing of an earlier subscription prefixes it
            self._corrections_since = time.monotonic()
            self._subscribe(client, [(wanted, True)])
            log.info("mqtt input: subscribed %s", wanted)
        self._update_state()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        topics = self._pending.pop(mid, [])
        refused = []
        for i, rc in enumerate(reason_codes):
            topic, essential = topics[i] if i < len(topics) else ("?", False)
            if rc.is_failure:
                refused.append(f"{topic} ({rc})")
                if essential:
                    self._denied[topic] = str(rc)
            elif topic == self._corrections:
                self.stats.corrections_subscribed = topic  # health: the chosen region's topic is acknowledged
        if refused:
            self.report(self.stats.input_state, f"subscription refused: {', '.join(refused)}")
        if mid == self._key_mid:
            self._key_mid = None
            self._subscribe_rest(client)
        self._update_state()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._closed = True

    def _framer(self, topic: str, streams: tuple[str, ...]) -> Framer:
        framer = self._framers.get(topic)
        if framer is None:
            framer = self._framers[topic] = Framer(streams, on_garbage=self.stats.garbage)
        return framer

    def _on_message(self, client, userdata, message):
        self._messages += 1
        topic, payload = message.topic, message.payload
        if topic == self._corrections:
            self._on_corrections(topic, payload)
            return
        self._flush()  # what comes on other topics (keys, AssistNow) goes after the corrections read before it
        if topic == self.cfg.key_topic:
            if payload[:1] == b"{":
                try:
                    frames = [Frame(UBX, spartnkey_frame(parse_json_keys(payload)))]
                except (ValueError, RecursionError):
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
                client.subscribe(self._mga_updates, 0)  # optional and later: not awaited (stays `connected`)
        # any other topic: still in flight from a topic left on a region switch

    def _on_corrections(self, topic: str, payload: bytes) -> None:
        """The chosen region's corrections: submitted at once, or collected for the end of a read turn."""
        batch = self._batch
        for frame in self._framer(topic, (SPARTN,)).feed(payload):
            self.stats.data_in(frame.stream, len(frame.data))
            if batch is None:
                self.pipeline.submit(frame)
            else:
                batch.append(frame)
                self._batch_bytes += len(frame.data)
        if self._batch_bytes >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        """Submit the corrections collected in this read turn, in one go."""
        batch = self._batch
        if batch:
            self._batch, self._batch_bytes = [], 0
            if len(batch) == 1:
                self.pipeline.submit(batch[0])
            else:
                self.pipeline.submit_many(batch)

    # --- session ---------------------------------------------------------------------------------------------------

    def _client(self) -> paho.Client:
        client = BulkReadClient(
            CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id, protocol=paho.MQTTv311, clean_session=True
        )
        client.tls_set_context(tls_context(self.ca_file, self.cfg.certificate, self.cfg.private_key))
        client.connect_timeout = 10.0
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def session(self) -> float | None:  # noqa: PLR0912, PLR0915 - one session: each branch is a paho or socket event
        self._connected = self._closed = False
        self._refused = None
        self._key_mid = None
        self._pending.clear()
        self._denied.clear()
        self.stats.corrections_subscribed = None
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
            self.connect_failed(f"{self.cfg.host}:{self.cfg.port}", exc)
            return None
        started = time.monotonic()
        try:
            while not self.stopping():
                self.heartbeat = time.monotonic()
                rc = self._pump(client, self._wait_time(started))
                if self.stopping():
                    break
                if self._refused or self._closed or rc != paho.MQTT_ERR_SUCCESS:
                    if self._connected and not self._refused:
                        self.report("backoff", f"connection lost ({paho.error_string(rc)})")
                    break
                if not self._connected:
                    if time.monotonic() - started > CONNECT_TIMEOUT:
                        self.stats.set_input("connecting", "no CONNACK from broker")
                        break
                    continue
                if self._rest:
                    self._follow_region(client)
                if self._pending or self._denied:
                    waited = time.monotonic() - self._subscribing_since
                    if waited > self.no_data_timeout:
                        denied = ", ".join(f"{t} ({rc})" for t, rc in self._denied.items())
                        why = f"subscription refused: {denied}" if denied else "no SUBACK"
                        self.report("backoff", f"{why} after {waited:.0f} s: reconnecting")
                        break
                    continue  # the watchdog starts at the SUBACK
                if self._corrections is None:
                    continue  # no correction topic (L-band, or no region yet): keys and frequencies come rarely
                if self.too_silent(self._corrections_since, self.no_data_timeout):
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

    def _wait_time(self, started: float) -> float:
        """Seconds until the session's next deadline: CONNACK, the SUBACK watchdog, the no-data watchdog, or paho's
        keepalive check (a quarter of the keepalive: the PINGREQ goes out at most that late)."""
        wait = self.cfg.keepalive / 4
        if not self._connected:
            return min(wait, started + CONNECT_TIMEOUT - time.monotonic() + 0.01)
        if self._pending or self._denied:
            return min(wait, self._subscribing_since + self.no_data_timeout - time.monotonic() + 0.01)
        if self._corrections is not None:
            return min(wait, self.silence_left(self._corrections_since, self.no_data_timeout))
        return wait

    def _pump(self, client: paho.Client, timeout: float) -> paho.MQTTErrorCode:
        """One turn of paho's external-loop API: sleep on the socket (and our wake-up) until traffic or `timeout`,
        then read, write what is queued, and run paho's keepalive check."""
        sock = client.socket()
        if sock is None:
            return paho.MQTT_ERR_NO_CONN
        try:
            readable, _writable = self.wait_for(sock, timeout, write=client.want_write())
        except (ValueError, TypeError, OSError):  # as paho's loop(): a socket closed under us is a lost connection
            return paho.MQTT_ERR_CONN_LOST
        self._batch, self._batch_bytes = [], 0  # the corrections of this turn go to the writer together
        try:
            for packet in range(PACKETS_PER_TURN if readable else 0):
                before = self._messages
                rc = client.loop_read()  # one packet (paho 2 reads one unless it has messages in flight)
                if rc != paho.MQTT_ERR_SUCCESS or client.socket() is None:
                    return rc  # as paho's own loop(): a closed session shows in on_disconnect
                if not packet:
                    self._flush()  # the packet that woke us goes out at once; a backlog behind it goes together
                if self._messages == before and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    break  # nothing more was waiting (a busy stream is read on without a select per packet)
        finally:
            self._flush()
            self._batch = None
        if client.want_write():
            rc = client.loop_write()
            if rc != paho.MQTT_ERR_SUCCESS:
                return rc
        return client.loop_misc()

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
