"""Synthetic GNSS frames for the lab: SPARTN (with frame and message CRCs), UBX (RXM-SPARTNKEY, ACKs), RTCM3, NMEA.

Also a combined stream splitter (UBX, NMEA, RTCM3, SPARTN) that checks every checksum, used by the receiver simulator.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyubx2 import SET as UBX_SET
from pyubx2 import UBXMessage

SPARTN_PREAMBLE = 0x73
UBX_SYNC = b"\xb5\x62"
RTCM_PREAMBLE = 0xD3
GPS_EPOCH_UNIX = 315964800  # 1980-01-06 in Unix seconds
GPS_LEAP_SECONDS = 18  # GPS - UTC since 2017
SPARTN_EPOCH_UNIX = 1262304000  # 2010-01-01, origin of the 32-bit SPARTN GNSS time tag

# SPARTN message types / subtypes (SPARTN v2): OCB=0, HPAC=1, GAD=2; subtype = constellation for OCB/HPAC
SPARTN_OCB, SPARTN_HPAC, SPARTN_GAD = 0, 1, 2
CONSTELLATIONS = {"GPS": 0, "GLO": 1, "GAL": 2, "BDS": 3}


# ---------------------------------------------------------------- CRCs


def _crc_msb(data: bytes, width: int, poly: int, init: int = 0, xorout: int = 0) -> int:
    """Plain MSB-first (non-reflected) CRC of `width` bits, as SPARTN and RTCM3 use."""
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    crc = init
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & top else (crc << 1)
            crc &= mask
    return crc ^ xorout


def _gf2_mod(value: int, poly: int, width: int) -> int:
    """Remainder of the GF(2) polynomial `value` divided by `poly` (degree `width`)."""
    for bit in range(value.bit_length() - 1, width - 1, -1):
        if value >> bit & 1:
            value ^= poly << (bit - width)
    return value


def spartn_crc4(data: bytes) -> int:
    """SPARTN frame CRC (TF006): CRC-4, polynomial x^4+x+1, byte-wise as the u-blox PointPerfect library computes it
    over the 3 header bytes after the preamble with the 4 CRC bits zeroed."""
    rem = 0
    for byte in data:
        rem = _gf2_mod((byte ^ rem) << 7, 0x13, 4)
    return rem


def spartn_message_crc(data: bytes, crc_type: int) -> int:
    """SPARTN message CRC (TF018) over everything after the preamble; crc_type 0..3 = CRC-8/16/24/32."""
    if crc_type == 0:
        return _crc_msb(data, 8, 0x07)
    if crc_type == 1:
        return _crc_msb(data, 16, 0x1021)
    if crc_type == 2:
        return _crc_msb(data, 24, 0x864CFB)
    if crc_type == 3:
        return _crc_msb(data, 32, 0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF)
    raise ValueError(f"crc_type must be 0..3, not {crc_type}")


def crc24q(data: bytes) -> int:
    """RTCM3 CRC-24Q."""
    return _crc_msb(data, 24, 0x864CFB)


def ubx_checksum(body: bytes) -> bytes:
    """UBX 8-bit Fletcher checksum over class, id, length and payload."""
    a = b = 0
    for byte in body:
        a = (a + byte) & 0xFF
        b = (b + a) & 0xFF
    return bytes((a, b))


def nmea_checksum(body: str) -> str:
    """XOR of the characters between '$' and '*', as two hex digits."""
    value = 0
    for ch in body.encode("ascii"):
        value ^= ch
    return f"{value:02X}"


# ---------------------------------------------------------------- bit packing


class _Bits:
    """Big-endian bit writer."""

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def put(self, value: int, bits: int) -> None:
        if value < 0:
            value &= (1 << bits) - 1  # two's complement for signed fields
        if value >> bits:
            raise ValueError(f"{value} does not fit in {bits} bits")
        self.value = (self.value << bits) | value
        self.length += bits

    def tobytes(self) -> bytes:
        pad = -self.length % 8
        return (self.value << pad).to_bytes((self.length + pad) // 8, "big")


# ---------------------------------------------------------------- SPARTN


def spartn_time_tag(when: float | None = None) -> int:
    """32-bit SPARTN GNSS time tag: GPS seconds since 2010-01-01 (UTC now if `when` is None)."""
    unix = time.time() if when is None else when
    return int(unix) - SPARTN_EPOCH_UNIX + GPS_LEAP_SECONDS - 15  # GPS-UTC was 15 s at the 2010 epoch


def spartn_frame(
    msg_type: int,
    subtype: int,
    payload: bytes,
    *,
    time_tag: int | None = None,
    time_tag_32: bool = True,
    solution_id: int = 5,
    processor_id: int = 12,
    crc_type: int = 2,
    encrypted: bool = True,
    encryption_id: int = 1,
    sequence: int = 0,
    auth_indicator: int = 1,
) -> bytes:
    """One SPARTN transport frame: header with frame CRC-4, payload description, payload, message CRC.

    `encrypted` sets the EAF flag and adds the encryption/authentication fields (payload bytes are used as given, so
    pass random bytes for an 'encrypted' payload). Embedded authentication data is not generated (auth_indicator <= 1).
    """
    if not 0 <= msg_type < 128 or not 0 <= subtype < 16:
        raise ValueError("msg_type is 7 bits, subtype 4 bits")
    if len(payload) >= 1024:
        raise ValueError("SPARTN payload is at most 1023 bytes")
    if auth_indicator > 1:
        raise ValueError("embedded authentication is not supported")
    if time_tag is None:
        time_tag = spartn_time_tag() if time_tag_32 else spartn_time_tag() % 43200
    head = _Bits()
    head.put(msg_type, 7)
    head.put(len(payload), 10)
    head.put(1 if encrypted else 0, 1)
    head.put(crc_type, 2)
    head.put(0, 4)  # frame CRC placeholder
    header = bytearray(head.tobytes())
    header[2] |= spartn_crc4(bytes(header))
    desc = _Bits()
    desc.put(subtype, 4)
    desc.put(1 if time_tag_32 else 0, 1)
    desc.put(time_tag & (0xFFFFFFFF if time_tag_32 else 0xFFFF), 32 if time_tag_32 else 16)
    desc.put(solution_id, 7)
    desc.put(processor_id, 4)
    if encrypted:
        desc.put(encryption_id, 4)
        desc.put(sequence % 64, 6)
        desc.put(auth_indicator, 3)
        desc.put(0, 3)  # embedded auth length
    core = bytes(header) + desc.tobytes() + payload
    crc = spartn_message_crc(core, crc_type)
    return bytes([SPARTN_PREAMBLE]) + core + crc.to_bytes(crc_type + 1, "big")


@dataclass
class SpartnSchedule:
    """Synthetic continental IP stream at roughly the real rate (~320 B/s): OCB per constellation every 5 s,
    an HPAC burst per constellation and GAD every 30 s (sizes modelled on the real capture)."""

    constellations: tuple[str, ...] = ("GPS", "GLO", "GAL", "BDS")
    ocb_size: tuple[int, int] = (50, 260)
    hpac_frames: int = 5
    hpac_size: tuple[int, int] = (100, 550)
    gad_frames: int = 2
    gad_size: tuple[int, int] = (60, 200)
    _seq: int = field(default=0, repr=False)

    def _payload(self, lo: int, hi: int) -> bytes:
        size = lo + int.from_bytes(os.urandom(2), "big") % (hi - lo + 1)
        return os.urandom(size)

    def _frame(self, msg_type: int, subtype: int, size: tuple[int, int], when: float) -> bytes:
        self._seq += 1
        tag = spartn_time_tag(when)
        # like the real stream: 32-bit tags on HPAC, 16-bit (seconds of half-day) on OCB/GAD
        wide = msg_type == SPARTN_HPAC
        return spartn_frame(
            msg_type,
            subtype,
            self._payload(*size),
            time_tag=tag if wide else tag % 43200,
            time_tag_32=wide,
            sequence=self._seq,
        )

    def epoch(self, second: int, when: float | None = None) -> list[bytes]:
        """The frames due at whole second `second` of the stream (empty for most seconds)."""
        when = time.time() if when is None else when
        out: list[bytes] = []
        if second % 30 == 0:
            out += [self._frame(SPARTN_GAD, 0, self.gad_size, when) for _ in range(self.gad_frames)]
            for name in self.constellations:
                sub = CONSTELLATIONS[name]
                out += [self._frame(SPARTN_HPAC, sub, self.hpac_size, when) for _ in range(self.hpac_frames)]
        if second % 5 == 0:
            out += [self._frame(SPARTN_OCB, CONSTELLATIONS[name], self.ocb_size, when) for name in self.constellations]
        return out


def synthetic_spartn(count: int, *, msg_type: int = SPARTN_OCB, size: int = 64) -> list[bytes]:
    """`count` distinct OCB-like frames cycling through the constellations (deterministic sizes, random payloads)."""
    subs = list(CONSTELLATIONS.values())
    return [
        spartn_frame(msg_type, subs[i % len(subs)], os.urandom(size + i % 7), sequence=i, time_tag=1000 + i)
        for i in range(count)
    ]


# ---------------------------------------------------------------- UBX


def ubx_frame(cls: int, msg_id: int, payload: bytes = b"") -> bytes:
    """A UBX frame built by hand (sync, class, id, little-endian length, payload, checksum)."""
    body = struct.pack("<BBH", cls, msg_id, len(payload)) + payload
    return UBX_SYNC + body + ubx_checksum(body)


def gps_week_tow(start_ms: int) -> tuple[int, int]:
    """ZTP key start (Unix ms) to GPS (week, time of week s), as RTK Everywhere converts it (leap seconds = 18)."""
    gps_s = start_ms // 1000 - GPS_EPOCH_UNIX + GPS_LEAP_SECONDS
    return gps_s // 604800, gps_s % 604800


def spartnkey_frame(dynamickeys: dict | list) -> bytes:
    """UBX-RXM-SPARTNKEY (0x02 0x36) carrying the keys of a ZTP `dynamickeys` dict ({current, next}; `next` may be
    missing) or a list of {start, value} entries, in that order. Framed by pyubx2 (its field map cannot size the
    variable key block from keywords, so the payload is packed here)."""
    if isinstance(dynamickeys, dict):
        entries = [dynamickeys[k] for k in ("current", "next") if dynamickeys.get(k)]
    else:
        entries = list(dynamickeys)
    keys = []
    for entry in entries:
        week, tow = gps_week_tow(int(entry["start"]))
        keys.append({"week": week, "tow": tow, "value": entry["value"]})
    return UBXMessage("RXM", "RXM-SPARTN-KEY", UBX_SET, payload=spartnkey_payload(keys)).serialize()


def parse_spartnkey_payload(payload: bytes) -> list[dict]:
    """Keys in an RXM-SPARTNKEY payload as [{"week", "tow", "value"}] (independent of pyubx2)."""
    if len(payload) < 4:
        return []
    num = payload[1]
    keys, pos = [], 4
    lengths = []
    for _ in range(num):
        _, length, week, tow = struct.unpack_from("<BBHI", payload, pos)
        keys.append({"week": week, "tow": tow})
        lengths.append(length)
        pos += 8
    for key, length in zip(keys, lengths, strict=True):
        key["value"] = payload[pos : pos + length].hex()
        pos += length
    return keys


def spartnkey_payload(keys: list[dict]) -> bytes:
    """RXM-SPARTNKEY payload from [{"week", "tow", "value"}] (the receiver's answer to a poll)."""
    head = struct.pack("<BBH", 1, len(keys), 0)
    infos = b"".join(struct.pack("<BBHI", 0, len(bytes.fromhex(k["value"])), k["week"], k["tow"]) for k in keys)
    return head + infos + b"".join(bytes.fromhex(k["value"]) for k in keys)


def cfg_valset(items: dict[int, int], layers: int = 1) -> bytes:
    """UBX-CFG-VALSET (version 0) setting key id -> value (value size taken from the key id)."""
    payload = struct.pack("<BBH", 0, layers, 0)
    for key, value in items.items():
        payload += struct.pack("<I", key) + value.to_bytes(cfg_value_size(key), "little")
    return ubx_frame(0x06, 0x8A, payload)


def cfg_value_size(key: int) -> int:
    """Byte size of a configuration item from bits 28..30 of its key id."""
    size = (key >> 28) & 0x7
    return {1: 1, 2: 1, 3: 2, 4: 4, 5: 8}[size]


def mga_frames(total_bytes: int = 11000) -> bytes:
    """An AssistNow-like blob: UBX-MGA-GPS-EPH frames (0x13 0x00, 68-byte payload) adding up to ~total_bytes."""
    out = bytearray()
    sv = 0
    while len(out) < total_bytes:
        sv = sv % 32 + 1
        out += ubx_frame(0x13, 0x00, bytes([1, 0, sv, 0]) + os.urandom(64))
    return bytes(out)


# ---------------------------------------------------------------- L-band (NEO-D9S)

UBX_RXM_PMP = (0x02, 0x72)
PMP_USER_DATA_MAX = 504  # userData bytes per UBX-RXM-PMP frame (fixed in version 0x00, up to this in 0x01)
PMP_UNIQUE_WORD = 0xE15AE893E15AE893  # CFG-PMP-UNIQUE_WORD for PointPerfect (SparkFun_u-blox_GNSS_v3 examples)
PMP_SERVICE_ID = 21845  # CFG-PMP-SERVICE_ID for PointPerfect (same examples; 50821 is the module default)


def rxm_pmp_frame(
    user_data: bytes,
    *,
    version: int = 1,
    time_tag: int = 0,
    service_id: int = PMP_SERVICE_ID,
    unique_word: int = PMP_UNIQUE_WORD,
    ebno_db: float = 8.0,
    fec_bits: int = 0,
    unique_word_bit_errors: int = 0,
) -> bytes:
    """UBX-RXM-PMP (0x02 0x72) as a NEO-D9S outputs it, carrying `user_data` (the demodulated SPARTN stream).

    Both wire layouts, as semuconsulting/pyubx2 src/pyubx2/ubxtypes_get.py (RXM-PMP-V0/V1) and
    sparkfun/SparkFun_u-blox_GNSS_v3 src/u-blox_structs.h (UBX_RXM_PMP_data_t) define them:
    - version 0x01 (default; what the D9S emits: pygnssutils' d9s example and GNSSv3
      examples/NEO-D9S_and_NEO-D9C/Example8_LBand_SPARTN_Parsing read numBytesUserData and userData at payload[24]):
      version U1, reserved0 U1, numBytesUserData U2, timeTag U4, uniqueWord 2xU4, serviceIdentifier U2, spare U1,
      uniqueWordBitErrors U1, fecBits U2, ebno U1 (2^-3 dB), reserved1 U1, userData[numBytesUserData <= 504];
    - version 0x00: version U1, reserved0 3xU1, timeTag, uniqueWord 2xU4, serviceIdentifier, spare,
      uniqueWordBitErrors, userData[504] (always 504: shorter data is zero-padded), fecBits U2, ebno U1, reserved1.
    """
    if len(user_data) > PMP_USER_DATA_MAX:
        raise ValueError(f"RXM-PMP carries at most {PMP_USER_DATA_MAX} user data bytes, not {len(user_data)}")
    words = struct.pack("<II", unique_word >> 32, unique_word & 0xFFFFFFFF)
    ebno = max(0, min(255, round(ebno_db * 8)))
    if version == 1:
        payload = (
            struct.pack("<BBHI", 1, 0, len(user_data), time_tag)
            + words
            + struct.pack("<HBBHBB", service_id, 0, unique_word_bit_errors, fec_bits, ebno, 0)
            + user_data
        )
    elif version == 0:
        payload = (
            struct.pack("<B3xI", 0, time_tag)
            + words
            + struct.pack("<HBB", service_id, 0, unique_word_bit_errors)
            + user_data.ljust(PMP_USER_DATA_MAX, b"\0")
            + struct.pack("<HBB", fec_bits, ebno, 0)
        )
    else:
        raise ValueError(f"RXM-PMP version is 0 or 1, not {version}")
    return ubx_frame(*UBX_RXM_PMP, payload)


def pmp_user_data(frame_or_payload: bytes) -> bytes:
    """The userData of an RXM-PMP frame (whole frame or payload), either version."""
    payload = frame_or_payload
    if payload[:2] == UBX_SYNC and tuple(payload[2:4]) == UBX_RXM_PMP:
        payload = payload[6:-2]
    if payload[0] == 1:
        size = struct.unpack_from("<H", payload, 2)[0]
        return payload[24 : 24 + size]
    return payload[20 : 20 + PMP_USER_DATA_MAX]


def frequencies_payload(mapping: dict) -> bytes:
    """The retained /pp/frequencies/Lb message: region -> MHz (number or string) as the service publishes it, e.g.
    {"frequencies": {"us": {"current": {"value": "1556.29"}}, ...}}, pretty-printed with 2-space indents, MHz as
    strings: byte for byte the payload in semuconsulting/pygnssutils tests/test_static.py `testparsemqttfreq`; the
    shape u-blox/XPLR-HPG-software XPLR-HPG-SW/components/hpglib/src/location_service/lband_service/xplr_lband.c
    (lbandParseFrequencyFromMqtt: frequencies.<region>.current.value, a string read with %lf) parses."""
    freqs = {
        region: {"current": {"value": value if isinstance(value, str) else repr(float(value))}}
        for region, value in mapping.items()
    }
    return json.dumps({"frequencies": freqs}, indent=2).encode()


LBAND_FREQUENCIES_MHZ = {"us": "1556.29", "eu": "1545.26"}  # GNSSv3 NEO-D9S examples; they move: read the topic


D9S_BOOT_TEXT = (  # a NEO-D9S identifies itself like this (u-blox/XPLR-HPG-software
    # XPLR-HPG-SW/examples/positioning/01_hpg_gnss_config/README.md device info: PMP 1.04, protocol 24.00)
    "u-blox AG - www.u-blox.com",
    "HW UBX 9 00190000",
    "ROM BASE 0x118B2060",
    "FWVER=PMP 1.04",
    "PROTVER=24.00",
    "MOD=NEO-D9S",
)


def d9s_boot_notice() -> bytes:
    """The startup notices of a NEO-D9S after a reset, as UBX-INF-NOTICE (the D9S speaks UBX only, no NMEA)."""
    return b"".join(ubx_frame(0x04, 0x02, line.encode()) for line in D9S_BOOT_TEXT)


# ---------------------------------------------------------------- RTCM3


def rtcm_frame(payload: bytes) -> bytes:
    """An RTCM3 transport frame: 0xD3, 6 reserved bits + 10-bit length, payload, CRC-24Q."""
    if len(payload) >= 1024:
        raise ValueError("RTCM3 payload is at most 1023 bytes")
    head = bytes([RTCM_PREAMBLE]) + len(payload).to_bytes(2, "big")
    return head + payload + crc24q(head + payload).to_bytes(3, "big")


def rtcm_1005(station_id: int = 0, ecef: tuple[float, float, float] = (3_978_000.0, -12_000.0, 4_968_000.0)) -> bytes:
    """RTCM 1005 (stationary antenna reference point, ECEF in metres), hand-packed."""
    x, y, z = (round(v * 10000) for v in ecef)  # 0.0001 m units
    bits = _Bits()
    bits.put(1005, 12)
    bits.put(station_id, 12)
    bits.put(0, 6)  # ITRF realization year
    bits.put(1, 1)  # GPS
    bits.put(1, 1)  # GLONASS
    bits.put(1, 1)  # Galileo
    bits.put(0, 1)  # reference-station indicator
    bits.put(x, 38)
    bits.put(0, 1)  # single receiver oscillator
    bits.put(0, 1)  # reserved
    bits.put(y, 38)
    bits.put(0, 2)  # quarter cycle indicator
    bits.put(z, 38)
    return rtcm_frame(bits.tobytes())


# ---------------------------------------------------------------- NMEA


def _nmea_angle(value: float, degree_digits: int, hemispheres: str) -> str:
    """An NMEA latitude (ddmm.mmmmm) or longitude (dddmm.mmmmm) with its hemisphere letter, e.g. `5200.00000,N`."""
    minutes = round(abs(value) * 60, 5)
    degrees, minutes = divmod(minutes, 60)
    return f"{int(degrees):0{degree_digits}d}{minutes:08.5f},{hemispheres[value < 0]}"


def gga_sentence(
    lat: float = 52.0,
    lon: float = 5.0,
    alt: float = 10.0,
    *,
    quality: int = 1,
    num_sv: int = 12,
    hdop: float = 0.8,
    talker: str = "GN",
    when: dt.datetime | None = None,
) -> bytes:
    """NMEA GGA as u-blox receivers print it (geoid separation 47 m); quality 0 gives the no-fix form with empty
    position fields."""
    when = when or dt.datetime.now(dt.timezone.utc)
    utc = f"{when:%H%M%S}.{when.microsecond // 10000:02d}"
    if quality == 0:
        body = f"{talker}GGA,{utc},,,,,0,00,99.99,,,,,,"
    else:
        position = f"{_nmea_angle(lat, 2, 'NS')},{_nmea_angle(lon, 3, 'EW')}"
        body = f"{talker}GGA,{utc},{position},{quality},{num_sv},{hdop},{alt},M,47.0,M,,"
    return f"${body}*{nmea_checksum(body)}\r\n".encode()


def txt_sentence(text: str, msg_type: int = 2, num: int = 1, total: int = 1, talker: str = "GN") -> bytes:
    """NMEA TXT as u-blox prints it ($GNTXT,01,01,02,text*CS); msg_type 2 = notice."""
    body = f"{talker}TXT,{total:02d},{num:02d},{msg_type:02d},{text}"
    return f"${body}*{nmea_checksum(body)}\r\n".encode()


BOOT_TEXT = (
    "u-blox AG - www.u-blox.com",
    "HW UBX 9 00190000",
    "ROM BASE 0x118B2060",
    "FWVER=HPG 1.32",
    "PROTVER=27.31",
    "MOD=ZED-F9P",
    "GPS;GLO;GAL;BDS",
    "SBAS;QZSS",
    "ANTSUPERV=",
    "ANTSTATUS=DONTKNOW",
    "PF=3FF",
)


def boot_notice(with_inf: bool = False) -> bytes:
    """The startup banner a u-blox F9 prints after a reset: $GNTXT notices (and UBX-INF-NOTICE copies if asked)."""
    out = b"".join(txt_sentence(line) for line in BOOT_TEXT)
    if with_inf:
        out += b"".join(ubx_frame(0x04, 0x02, line.encode()) for line in BOOT_TEXT)
    return out


# ---------------------------------------------------------------- splitting


@dataclass
class Frame:
    """One frame found in a byte stream: kind is spartn | ubx | rtcm | nmea; name is e.g. 'RXM-0x36' style info."""

    kind: str
    raw: bytes
    name: str
    t: float = 0.0

    @property
    def ubx_id(self) -> tuple[int, int] | None:
        return (self.raw[2], self.raw[3]) if self.kind == "ubx" else None

    @property
    def payload(self) -> bytes:
        """UBX payload, RTCM payload, SPARTN whole frame, NMEA sentence."""
        if self.kind == "ubx":
            return self.raw[6:-2]
        if self.kind == "rtcm":
            return self.raw[3:-3]
        return self.raw


_NMEA_MAX = 100


def _spartn_len(buf: bytes | bytearray, i: int) -> int | None:
    """Total frame length of a SPARTN frame at buf[i] (header CRC already checked), None if more bytes are needed."""
    if len(buf) - i < 6:
        return None
    n_data = ((buf[i + 1] & 0x01) << 9) | (buf[i + 2] << 1) | (buf[i + 3] >> 7)
    eaf = (buf[i + 3] >> 6) & 1
    crc_type = (buf[i + 3] >> 4) & 3
    wide = (buf[i + 4] >> 3) & 1
    desc = 4 + (2 if wide else 0) + (2 if eaf else 0)
    auth = 0
    if eaf:
        if len(buf) - i < 4 + desc:
            return None
        tail = int.from_bytes(buf[i + 4 + desc - 2 : i + 4 + desc], "big")
        auth_ind, auth_len = (tail >> 3) & 7, tail & 7
        if auth_ind > 1:
            auth = {0: 8, 1: 12, 2: 16, 3: 32, 4: 64}.get(auth_len, 0)
    return 4 + desc + n_data + auth + crc_type + 1


def _spartn_name(raw: bytes) -> str:
    msg_type = raw[1] >> 1
    return f"SPARTN-{msg_type}-{raw[4] >> 4}"


class StreamSplitter:
    """Incremental splitter for a mixed UBX/NMEA/RTCM3/SPARTN byte stream; every checksum is verified.

    Bytes that are not part of a valid frame (split or garbled frames, noise) are counted in `garbage_bytes`.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage_bytes = 0

    def feed(self, data: bytes, final: bool = False) -> list[Frame]:
        """Frames completed by `data`. With `final`, nothing more is coming: an unfinished candidate is not waited
        for, its first byte counts as garbage and the scan goes on (finds frames hidden behind a false header)."""
        self._buf += data
        out: list[Frame] = []
        buf = self._buf
        i = 0
        while i < len(buf):
            res = self._try(buf, i)
            if res is None and final:
                res = 0
            if res is None:  # need more bytes
                break
            if res == 0:  # not a frame start here
                self.garbage_bytes += 1
                i += 1
                continue
            out.append(res)
            i += len(res.raw)
        del buf[:i]
        return out

    def pending(self) -> int:
        """Bytes buffered while waiting for the rest of a frame."""
        return len(self._buf)

    def _try(self, buf: bytearray, i: int):
        """The frame starting at buf[i], None when more bytes are needed, 0 when no frame starts there."""
        parse = _PARSERS.get(buf[i])
        return parse(buf, i) if parse else 0


# Each parser: (buf, i) with buf[i] its preamble -> the Frame there, None (need more bytes) or 0 (no frame here).
def _try_ubx(buf: bytearray, i: int):
    avail = len(buf) - i
    if avail < 2:
        return None
    if buf[i + 1] != 0x62:
        return 0
    if avail < 6:
        return None
    size = 8 + int.from_bytes(buf[i + 4 : i + 6], "little")
    if avail < size:
        return None
    raw = bytes(buf[i : i + size])
    if ubx_checksum(raw[2:-2]) != raw[-2:]:
        return 0
    return Frame("ubx", raw, f"UBX-{raw[2]:02X}-{raw[3]:02X}")


def _try_nmea(buf: bytearray, i: int):
    end = buf.find(b"\r\n", i, i + _NMEA_MAX)
    if end < 0:
        return None if len(buf) - i < _NMEA_MAX else 0
    raw = bytes(buf[i : end + 2])
    star = raw.rfind(b"*")
    try:
        ok = star > 0 and nmea_checksum(raw[1:star].decode("ascii")) == raw[star + 1 : star + 3].decode()
    except UnicodeDecodeError:
        ok = False
    if not ok:
        return 0
    return Frame("nmea", raw, raw[1:star].split(b",", 1)[0].decode())


def _try_rtcm(buf: bytearray, i: int):
    avail = len(buf) - i
    if avail < 3:
        return None
    if buf[i + 1] & 0xFC:
        return 0
    size = 6 + (((buf[i + 1] & 0x03) << 8) | buf[i + 2])
    if avail < size:
        return None
    raw = bytes(buf[i : i + size])
    if crc24q(raw[:-3]) != int.from_bytes(raw[-3:], "big"):
        return 0
    number = (raw[3] << 4) | (raw[4] >> 4) if size > 7 else 0
    return Frame("rtcm", raw, f"RTCM-{number}")


def _try_spartn(buf: bytearray, i: int):
    avail = len(buf) - i
    if avail < 4:
        return None
    head = bytearray(buf[i + 1 : i + 4])
    frame_crc = head[2] & 0x0F
    head[2] &= 0xF0
    if spartn_crc4(bytes(head)) != frame_crc:
        return 0
    size = _spartn_len(buf, i)
    if size is None or avail < size:
        return None
    raw = bytes(buf[i : i + size])
    crc_type = (raw[3] >> 4) & 3
    if spartn_message_crc(raw[1 : -(crc_type + 1)], crc_type) != int.from_bytes(raw[-(crc_type + 1) :], "big"):
        return 0
    return Frame("spartn", raw, _spartn_name(raw))


_PARSERS = {0xB5: _try_ubx, 0x24: _try_nmea, RTCM_PREAMBLE: _try_rtcm, SPARTN_PREAMBLE: _try_spartn}  # 0x24 '$'


def split_frames(data: bytes) -> tuple[list[Frame], int]:
    """All frames in `data` and the number of bytes that were not part of a valid frame."""
    splitter = StreamSplitter()
    frames = splitter.feed(data, final=True)
    return frames, splitter.garbage_bytes


def iter_spartn_file(path, chunk: int = 65536) -> Iterator[bytes]:
    """SPARTN frames of a capture file (plain concatenation of frames), other bytes skipped."""
    splitter = StreamSplitter()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            for frame in splitter.feed(block):
                if frame.kind == "spartn":
                    yield frame.raw
        for frame in splitter.feed(b"", final=True):
            if frame.kind == "spartn":
                yield frame.raw
