"""ZTP dynamic keys: GPS week/TOW conversion, UBX-RXM-SPARTNKEY frames and validity for health."""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass

from . import _credentials as contract
from .framing import ubx_frame

GPS_EPOCH_UNIX = 315964800  # 1980-01-06T00:00:00Z
GPS_LEAP_SECONDS = 18  # GPS - UTC since 2017
SECONDS_PER_WEEK = 604800


@dataclass(frozen=True)
class DynamicKey:
    start_ms: int
    duration_ms: int
    value: bytes  # 16 bytes

    @property
    def valid_from(self) -> float:
        return self.start_ms / 1000

    @property
    def valid_until(self) -> float:
        return (self.start_ms + self.duration_ms) / 1000

    def week_tow(self) -> tuple[int, int]:
        return gps_week_tow(self.start_ms)


def gps_week_tow(start_ms: int) -> tuple[int, int]:
    """ZTP key start (Unix ms) to GPS week and time of week in seconds."""
    gps_s = start_ms // 1000 - GPS_EPOCH_UNIX + GPS_LEAP_SECONDS
    return gps_s // SECONDS_PER_WEEK, gps_s % SECONDS_PER_WEEK


def parse_key(obj: object, where: str) -> DynamicKey:
    """One `{start, duration, value}` object; raises ValueError naming `where`."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: must be an object")
    value = obj.get("value")
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) and len(value) == 32 and value.isascii() else b""
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise ValueError(f"{where}.value: must be 32 hex characters")
    # the bounds of Contract 1 (_credentials.py): they also keep the GPS week of UBX-RXM-SPARTNKEY (uint16) in range
    for field, valid, unit in (
        ("start", contract.valid_key_start, "Unix milliseconds between 2010 and 2100"),
        ("duration", contract.valid_key_duration, "milliseconds between 1 hour and 400 days"),
    ):
        num = obj.get(field)
        if not isinstance(num, int) or isinstance(num, bool):
            raise ValueError(f"{where}.{field}: must be an integer ({unit})")
        if not valid(num):
            raise ValueError(f"{where}.{field}: out of range ({unit})")
    return DynamicKey(obj["start"], obj["duration"], raw)


def parse_dynamickeys(obj: object, where: str = "dynamickeys") -> dict[str, DynamicKey]:
    """`{current, next}` (either may be missing) to DynamicKey objects, ordered current then next."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: must be an object or null")
    return {name: parse_key(obj[name], f"{where}.{name}") for name in ("current", "next") if obj.get(name) is not None}


def parse_json_keys(payload: bytes) -> dict[str, DynamicKey]:
    """Keys published as JSON (`/pp/key/...` topics): either `{"dynamickeys": {...}}` or the inner object."""
    obj = json.loads(payload)
    if isinstance(obj, dict) and "dynamickeys" in obj:
        obj = obj["dynamickeys"]
    return parse_dynamickeys(obj)


def spartnkey_frame(keys: dict[str, DynamicKey]) -> bytes:
    """UBX-RXM-SPARTNKEY (0x02 0x36) holding the keys in the order given."""
    items = list(keys.values())
    payload = struct.pack("<BBH", 1, len(items), 0)
    for key in items:
        week, tow = key.week_tow()
        payload += struct.pack("<BBHI", 0, len(key.value), week, tow)
    payload += b"".join(key.value for key in items)
    return ubx_frame(0x02, 0x36, payload)


def spartnkey_poll() -> bytes:
    """Poll for RXM-SPARTNKEY: the receiver answers with the keys it holds (it never ACKs a key write)."""
    return ubx_frame(0x02, 0x36)


def keys_in_frame(raw: bytes) -> int:
    """Number of keys in an RXM-SPARTNKEY frame (0 when the receiver holds none)."""
    # payload: version (U1), numKeys (U1), ...; a framed UBX frame (checksum already checked) of class 0x02 0x36
    return raw[7] if len(raw) >= 12 and raw[2:4] == b"\x02\x36" else 0


@functools.lru_cache(maxsize=32)
def iso(ts: float | None) -> str | None:
    """Contract time text; cached: most times in a status write (start, keys, certificate, session) repeat."""
    if ts is None:
        return None
    return contract.iso(ts)


def key_status(keys: dict[str, DynamicKey], now: float) -> dict[str, dict]:
    """Contract 3 `keys.current/next` entries."""
    return {
        name: {
            "valid_from": iso(key.valid_from),
            "valid_until": iso(key.valid_until),
            "valid": key.valid_from <= now < key.valid_until,
        }
        for name, key in keys.items()
    }
