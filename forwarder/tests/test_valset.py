"""valset.py: CFG-VALSET bytes, and the Device dispatch both u-blox devices share (boot banner or notice = one reset
per debounce, our ACK counted only when configuring, everything else to the device's own hooks)."""

from __future__ import annotations

from pointperfect_forwarder.framing import NMEA, RTCM, UBX, Framer
from pointperfect_forwarder.stats import Stats
from pointperfect_forwarder.valset import RESET_DEBOUNCE, Device, Valset, cfg_valset
from pointperfect_sim import frames as F

ACK, NAK = F.ubx_frame(0x05, 0x01, b"\x06\x8a"), F.ubx_frame(0x05, 0x00, b"\x06\x8a")
MON_VER = F.ubx_frame(0x0A, 0x04, b"\0" * 40)


class _Device(Device):
    """Records what reached each hook."""

    def __init__(self, clock, configure=True):
        self.configure = configure
        self.stats = Stats("mqtt", "x:1", "serial", "/dev/x")
        self.framer = Framer((NMEA, UBX, RTCM))
        self.valset = Valset(self.stats, lambda _state: None, "test", "test:", clock=lambda: clock[0])
        self.seen: list[tuple[str, object]] = []

    def _nmea(self, raw):
        self.seen.append(("nmea", raw[3:6]))

    def _ubx(self, raw):
        self.seen.append(("ubx", raw[2:4]))

    def _applied(self):
        self.seen.append(("applied", None))

    def _after_reset(self, why):
        self.seen.append(("reset", why))


def test_cfg_valset_bytes():
    assert cfg_valset([("CFG_SPARTN_USE_SOURCE", 1)]) == F.cfg_valset({0x20A70001: 1})
    assert cfg_valset([("CFG_PMP_SERVICE_ID", 21845), ("CFG_MSGOUT_UBX_RXM_PMP_USB", 1)]) == F.cfg_valset(
        {0x30B10017: 21845, 0x20910320: 1}
    )


def test_a_boot_is_one_reset_per_debounce_and_other_frames_go_to_the_hooks():
    clock = [100.0]
    dev = _Device(clock)
    dev.feed(F.boot_notice(with_inf=True))  # several banner lines and notices: one reset
    assert [s for s in dev.seen if s[0] == "reset"] == [("reset", "boot banner")]
    assert ("nmea", b"TXT") in dev.seen  # banner lines without a boot marker are ordinary sentences
    clock[0] += RESET_DEBOUNCE
    dev.seen.clear()
    dev.feed(F.d9s_boot_notice())  # UBX-INF-NOTICE only
    assert [s for s in dev.seen if s[0] == "reset"] == [("reset", "boot notice")]
    dev.seen.clear()
    dev.feed(F.gga_sentence() + MON_VER + F.rtcm_1005())
    assert dev.seen == [("nmea", b"GGA"), ("ubx", b"\x0a\x04")]  # RTCM is nobody's business here


def test_our_ack_is_counted_only_while_configuring_and_pending():
    clock = [0.0]
    dev = _Device(clock)
    dev.feed(ACK)
    assert dev.seen == [("applied", None)] and dev.valset.state == "applied"
    dev.feed(ACK)  # nothing pending: not applied again
    assert dev.seen == [("applied", None)]
    other = _Device(clock, configure=False)
    other.feed(ACK + NAK)
    assert other.seen == [] and other.valset.state == "pending" and other.stats.last_error is None
