"""Incremental framer for SPARTN, UBX, RTCM3 and NMEA: yields whole, checked frames and resyncs on garbage."""

from __future__ import annotations

import re
from typing import NamedTuple

from .crc import _T4, SPARTN_CRCS, crc24

SPARTN, UBX, RTCM, NMEA = "spartn", "ubx", "rtcm", "nmea"
STREAMS = (SPARTN, UBX, RTCM, NMEA)

MAX_UBX_PAYLOAD = 8192  # larger declared lengths are treated as a false preamble (AssistNow frames are small)
MAX_NMEA = 120  # NMEA 0183 allows 82 characters; u-blox proprietary sentences are a bit longer
_SPARTN_AUTH_LEN = {0: 8, 1: 12, 2: 16, 3: 32, 4: 64}
_PREAMBLES = {SPARTN: b"\x73", UBX: b"\xb5", RTCM: b"\xd3", NMEA: b"$"}
_NEED = -1  # parse result: more bytes needed
_BAD = 0  # parse result: not a frame here


class Frame(NamedTuple):
    stream: str
    data: bytes


_new_frame = tuple.__new__  # Frame(stream, data) without the Python-level __new__ namedtuple adds: per frame


def _spartn(buf: bytearray, p: int, n: int) -> int:
    if n - p < 5:
        return _NEED
    b1, b2, b3 = buf[p + 1], buf[p + 2], buf[p + 3]
    if _T4[(b3 & 0xF0) ^ _T4[b2 ^ _T4[b1]]] != b3 & 0x0F:  # crc4_frame of the three bytes, unrolled
        return _BAD
    ndata = ((b1 & 1) << 9) | (b2 << 1) | (b3 >> 7)
    eaf = (b3 >> 6) & 1
    crc_type = (b3 >> 4) & 3
    gtlen = 32 if (buf[p + 4] >> 3) & 1 else 16
    desc_len = (gtlen + 16) // 8 + (2 if eaf else 0)
    auth = 0
    if eaf:
        if n - p < 4 + desc_len:
            return _NEED
        desc = int.from_bytes(buf[p + 4 : p + 4 + desc_len], "big")
        bits = desc_len * 8
        auth_ind = (desc >> (bits - gtlen - 29)) & 0x7
        auth_len = (desc >> (bits - gtlen - 32)) & 0x7
        if auth_ind > 1:
            if auth_len not in _SPARTN_AUTH_LEN:
                return _BAD
            auth = _SPARTN_AUTH_LEN[auth_len]
    body_end = p + 4 + desc_len + ndata + auth
    total = body_end - p + crc_type + 1
    if n - p < total:
        return _NEED
    want = int.from_bytes(buf[body_end : p + total], "big")
    return total if SPARTN_CRCS[crc_type](buf[p + 1 : body_end]) == want else _BAD


def _ubx(buf: bytearray, p: int, n: int) -> int:
    if n - p < 2:
        return _NEED
    if buf[p + 1] != 0x62:
        return _BAD
    if n - p < 6:
        return _NEED
    length = buf[p + 4] | (buf[p + 5] << 8)
    if length > MAX_UBX_PAYLOAD:
        return _BAD
    total = length + 8
    if n - p < total:
        return _NEED
    return total if ubx_checksum(buf[p + 2 : p + 6 + length]) == buf[p + total - 2 : p + total] else _BAD


def ubx_checksum(body: bytes | bytearray) -> bytes:
    """The two Fletcher-8 checksum bytes of a UBX frame's class, id, length and payload."""
    ck_a = ck_b = 0
    for byte in body:
        ck_a = (ck_a + byte) & 0xFF
        ck_b = (ck_b + ck_a) & 0xFF
    return bytes((ck_a, ck_b))


def ubx_frame(cls: int, msg_id: int, payload: bytes = b"") -> bytes:
    """A UBX frame: sync, class, id, little-endian length, payload, checksum."""
    body = bytes((cls, msg_id)) + len(payload).to_bytes(2, "little") + payload
    return b"\xb5\x62" + body + ubx_checksum(body)


def _rtcm(buf: bytearray, p: int, n: int) -> int:
    if n - p < 3:
        return _NEED
    if buf[p + 1] & 0xFC:
        return _BAD
    length = ((buf[p + 1] & 0x03) << 8) | buf[p + 2]
    total = length + 6
    if n - p < total:
        return _NEED
    return (
        total if crc24(bytes(buf[p : p + total - 3])) == int.from_bytes(buf[p + total - 3 : p + total], "big") else _BAD
    )


_NMEA_BODY = re.compile(rb"\$[\x20-\x7e]*?\*([0-9A-Fa-f]{2})\r?\n")
_NMEA_CHARS = re.compile(rb"[\x20-\x7e]*")


def _nmea(buf: bytearray, p: int, n: int) -> int:
    end = buf.find(b"\n", p, min(n, p + MAX_NMEA))
    if end < 0:
        # a non-printable byte before any line end means this '$' was not a sentence start
        printable = _NMEA_CHARS.match(buf, p + 1, min(n, p + MAX_NMEA)).end()
        if printable < min(n, p + MAX_NMEA) and buf[printable] != 0x0D:
            return _BAD
        return _BAD if n - p >= MAX_NMEA else _NEED
    m = _NMEA_BODY.fullmatch(buf, p, end + 1)
    if not m:
        return _BAD
    star = m.start(1) - 1
    csum = 0
    for byte in buf[p + 1 : star]:
        csum ^= byte
    return end + 1 - p if csum == int(m.group(1), 16) else _BAD


_PARSERS = {SPARTN: _spartn, UBX: _ubx, RTCM: _rtcm, NMEA: _nmea}


class Framer:
    """Feed bytes in any chunking; get the same whole frames. Bytes that start no valid frame are counted as garbage."""

    def __init__(self, streams: tuple[str, ...] | frozenset[str] = STREAMS, on_garbage=None):
        unknown = set(streams) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}")
        self.streams = frozenset(streams)
        self._by_first = {_PREAMBLES[s][0]: (s, _PARSERS[s]) for s in self.streams}
        self._scan = re.compile(b"[" + b"".join(re.escape(_PREAMBLES[s]) for s in sorted(self.streams)) + b"]")
        self._buf = bytearray()
        self.frames = dict.fromkeys(self.streams, 0)
        self.bytes = dict.fromkeys(self.streams, 0)
        self.garbage_bytes = 0
        self._on_garbage = on_garbage  # called with each increase of garbage_bytes (health counters)

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Drop a partial frame (e.g. the stream was reconnected); its bytes count as garbage."""
        if self._buf:
            self.garbage_bytes += len(self._buf)
            if self._on_garbage is not None:
                self._on_garbage(len(self._buf))
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        garbage_before = self.garbage_bytes
        buf = self._buf
        buf += data
        n = len(buf)
        p = 0
        out: list[Frame] = []
        by_first = self._by_first
        while p < n:
            # a steady stream has its next frame right here (no regex); else the regex finds the next preamble
            entry = by_first.get(buf[p])
            if entry is None:
                m = self._scan.search(buf, p)
                if m is None:
                    self.garbage_bytes += n - p
                    p = n
                    break
                start = m.start()
                self.garbage_bytes += start - p
                p = start
                entry = by_first[buf[p]]
            stream, parse = entry
            size = parse(buf, p, n)
            if size == _NEED:
                break
            if size == _BAD:
                self.garbage_bytes += 1
                p += 1
                continue
            out.append(_new_frame(Frame, (stream, bytes(buf[p : p + size]))))
            self.frames[stream] += 1
            self.bytes[stream] += size
            p += size
        if p:
            del buf[:p]
        if self._on_garbage is not None and self.garbage_bytes != garbage_before:
            self._on_garbage(self.garbage_bytes - garbage_before)
        return out
