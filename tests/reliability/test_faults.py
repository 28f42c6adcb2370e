"""R1 faults against the real broker, caster and receiver simulator, with the forwarder as a host process (the
network cut runs it in a namespace of its own): recovery time, frames lost, whole frames, same PID, bounded RSS,
and health that tells the truth while the fault lasts."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
import yaml
from pointperfect_sim import frames as F
from pointperfect_sim.replay import MqttReplayer

from tests.reliability import suite as L

pytestmark = [pytest.mark.lab, pytest.mark.slow]
RECOVERY_BOUND = 60.0  # generous assertion bound; the goal (30 s) and the measured figures are in the docs
RSS_GROWTH_KB = 20_000  # bounded memory: RSS may not grow more than this over one scenario


@pytest.fixture
def replayer(broker):
    rep = MqttReplayer(broker).connect()
    yield rep
    rep.stop()


def _mqtt_forwarder(tmp_path, broker, receiver, daemons, *, keys=None, prefix=(), **sections):
    keys = keys or L.lab_keys()
    creds = L.credentials(tmp_path / "etc", broker=broker, keys=keys)
    sections.setdefault("output", {"type": "serial", "device": receiver.device_path, "baudrate": 115200})
    cfg = L.forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), **sections)
    fwd = daemons(cfg, prefix)
    return fwd, creds


def _ready(fwd, receiver, timeout=45):
    fwd.wait_status(
        lambda s: s["input"]["state"] == "connected" and s["receiver"]["config_state"] == "applied", timeout
    )
    assert receiver.wait_for(lambda r: len(r.keys) == 2, 15), "keys never reached the receiver"


def _wait_flow(traffic, receiver, after: float, timeout: float = RECOVERY_BOUND) -> bool:
    """True once a frame published after `after` reached the receiver."""

    def ok(r):
        sent = {s.raw for s in traffic.snapshot() if s.t >= after}
        return any(f.raw in sent for f in r.frames_of("spartn")[-50:])

    return receiver.wait_for(ok, timeout, 0.2)


def _common(fwd, pid, sampler, name, d: L.Delivery, *, fault_start, fault_end, **extra):
    L.assert_whole(d)
    assert fwd.alive() and fwd.pid == pid, "the forwarder crashed or was replaced"
    assert fwd.status()["pid"] == pid
    assert d.recovery_s is not None and d.recovery_s <= RECOVERY_BOUND, d
    lo, hi = sampler.rss_range()
    assert hi - lo <= RSS_GROWTH_KB, (lo, hi)
    L.record(name, fault_s=round(fault_end - fault_start, 1), **d.as_dict(), rss_kb=[lo, hi], **extra)


def _role_backoff() -> dict:
    """backoff.* as the gateway role configures it (roles/gateway/defaults/main.yml)."""
    defaults = yaml.safe_load((L.REPO / "roles" / "gateway" / "defaults" / "main.yml").read_text())
    return {k: defaults[f"pointperfect_backoff_{k}"] for k in ("initial", "max", "reset_after")}


RESTARTS = 8
RESTART_EVERY = 15.0  # s between broker restarts: each session lives ~15 s, far below backoff.reset_after (60 s)
R1_GOAL = 30.0  # s from a restart to the first frame after it


def test_flapping_broker_recovers_within_30s_with_the_role_defaults(tmp_path, broker, receiver, replayer, daemons):
    """R1 (issue 17): the broker restarts 8 times, 15 s apart, and every session delivers corrections before the
    next restart. With the role's backoff (1/60/60 s, not lowered) each recovery restarts the backoff at 1 s, so
    every restart -> first frame after it stays within 30 s (before: 2, 3, 4, 11, 31, 50, 57, 58 s)."""
    backoff = _role_backoff()
    assert backoff == {"initial": 1, "max": 60, "reset_after": 60}, backoff
    replayer.publish_keys(L.lab_keys())
    fwd, _ = _mqtt_forwarder(tmp_path, broker, receiver, daemons, backoff=backoff)
    _ready(fwd, receiver)
    pid = fwd.pid
    traffic = L.Traffic(L.mqtt_sender(replayer)).start()
    sampler = L.Sampler(fwd).start()
    recoveries, to_first_frame, lost = [], [], 0
    try:
        assert _wait_flow(traffic, receiver, time.monotonic())
        due = time.monotonic() + 2
        for i in range(RESTARTS):
            time.sleep(max(0.0, due - time.monotonic()))
            t0 = time.monotonic()
            due = t0 + RESTART_EVERY
            broker.restart()
            t1 = time.monotonic()
            replayer.wait_connected(15)
            replayer.publish_keys(L.lab_keys())  # a restarted broker has no retained messages (persistence off)
            # this session delivers corrections before the next restart
            assert _wait_flow(traffic, receiver, t1), f"restart {i}: no data after {RECOVERY_BOUND} s"
            d = L.analyse(traffic, receiver, t0, t1, since=t0 - 0.5)
            recoveries.append(d.recovery_s)
            to_first_frame.append(round(t1 - t0 + d.recovery_s, 2))
            lost += d.lost_in_window
        # health told the truth: every reconnect is counted (the status file is rewritten on each state change)
        st = fwd.wait_status(lambda s: s["input"]["reconnects"] >= RESTARTS and s["input"]["state"] == "connected")
        assert fwd.metrics()["reconnects_total"] >= RESTARTS
    finally:
        traffic.stop()
        sampler.stop()
    d = L.analyse(traffic, receiver, 0, 0)
    L.assert_whole(d)
    assert fwd.alive() and fwd.pid == pid
    lo, hi = sampler.rss_range()
    assert hi - lo <= RSS_GROWTH_KB
    log = fwd.log()
    L.record(
        "broker_flapping_x8_role_defaults",
        restart_to_first_frame_s=to_first_frame,
        recoveries_s=recoveries,
        restart_every_s=RESTART_EVERY,
        backoff=backoff,
        reconnects=st["input"]["reconnects"],
        backoff_restarts=log.count("backoff restarts"),
        lost_in_windows=lost,
        published=d.published,
        delivered=d.delivered,
        garbage_bytes=d.garbage_bytes,
        rss_kb=[lo, hi],
    )
    assert max(to_first_frame) <= R1_GOAL, to_first_frame
    assert log.count("the session delivered data: backoff restarts") >= RESTARTS


@pytest.fixture
def caster(pki, tmp_path):
    c = L.Caster(tmp_path / "caster", mountpoint="NEAR-SPARTN", user="rel-user", password="rel-Ntrip-Pw-77", pki=pki)
    c.start()
    yield c
    c.stop()


def test_caster_connection_dropped_mid_frame(tmp_path, caster, receiver, daemons):
    creds = L.credentials(tmp_path / "etc", caster=caster, keys=L.lab_keys())
    cfg = L.forwarder_config(
        tmp_path,
        creds,
        input="ntrip",
        ca_file=str(caster.ca_path),
        ntrip={"gga_interval": 1},
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
    )
    fwd = L.Daemon(cfg).start()
    try:
        _ready(fwd, receiver)
        pid = fwd.pid
        traffic = L.Traffic(L.caster_sender(caster)).start()
        sampler = L.Sampler(fwd).start()
        try:
            assert _wait_flow(traffic, receiver, time.monotonic())
            half = F.synthetic_spartn(1, size=200)[0]
            caster.feed(half[: len(half) // 2])  # the connection drops with half a frame on the wire
            time.sleep(0.3)
            t0 = time.monotonic()
            caster.restart()
            t1 = time.monotonic()
            assert _wait_flow(traffic, receiver, t1)
            time.sleep(1)
        finally:
            traffic.stop()
            sampler.stop()
        d = L.analyse(traffic, receiver, t0, t1)
        assert half not in [f.raw for f in receiver.frames_of("spartn")]
        # the status file is rewritten on each state change (within 0.5 s): wait for it rather than read it once
        fwd.wait_status(lambda s: s["input"]["reconnects"] >= 1 and s["input"]["state"] == "connected", 10)
        _common(fwd, pid, sampler, "caster_drop_mid_frame", d, fault_start=t0, fault_end=t1)
    finally:
        fwd.stop()


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="the network cut needs root and iproute2 (its own network namespace)",
)


@pytest.mark.netns
@needs_netns
def test_network_cut_60s_of_only_this_forwarder(tmp_path, broker, receiver, replayer, daemons):
    ns = L.NetNS().up()
    try:
        port = ns.expose(broker.port)
        replayer.publish_keys(L.lab_keys())
        fwd, _ = _mqtt_forwarder(tmp_path, broker, receiver, daemons, prefix=ns.prefix, mqtt={"port": port})
        fwd.netns = ns
        _ready(fwd, receiver)
        pid = fwd.pid
        traffic = L.Traffic(L.mqtt_sender(replayer)).start()
        sampler = L.Sampler(fwd).start()
        try:
            assert _wait_flow(traffic, receiver, time.monotonic())
            t0 = time.monotonic()
            ns.cut()
            host_ok = replayer.wait_connected(1)  # the host network (broker, publisher) is untouched
            time.sleep(60)
            t1 = time.monotonic()
            ns.restore()
            assert _wait_flow(traffic, receiver, t1), fwd.log()[-3000:]
            time.sleep(1)
        finally:
            traffic.stop()
            sampler.stop()
        assert host_ok
        d = L.analyse(traffic, receiver, t0, t1)
        during = sampler.between(t0, t1)
        ages = [s["status"]["input"]["last_data_age"] for s in during if s["status"]["input"]["last_data_age"]]
        assert ages and max(ages) >= 25, "last_data_age did not grow during the cut"
        assert any(not s["status"]["healthy"] for s in during), "status said healthy through a 60 s cut"
        assert any(s["status"]["input"]["state"] != "connected" for s in during), "state stayed connected"
        unhealthy = [s["metrics"]["healthy"] for s in during if "metrics" in s]
        assert 0.0 in unhealthy, "metrics said healthy through a 60 s cut"
        detect = next(s["t"] - t0 for s in during if not s["status"]["healthy"])
        _common(
            fwd,
            pid,
            sampler,
            "network_cut_60s",
            d,
            fault_start=t0,
            fault_end=t1,
            detect_unhealthy_s=round(detect, 1),
            max_last_data_age=max(ages),
            method="netns+veth",
        )
    finally:
        ns.down()


def test_serial_unplug_and_replug(tmp_path, broker, receiver, replayer, daemons):
    replayer.publish_keys(L.lab_keys())
    fwd, _ = _mqtt_forwarder(tmp_path, broker, receiver, daemons)
    _ready(fwd, receiver)
    pid = fwd.pid
    traffic = L.Traffic(L.mqtt_sender(replayer)).start()
    sampler = L.Sampler(fwd).start()
    try:
        assert _wait_flow(traffic, receiver, time.monotonic())
        t0 = time.monotonic()
        receiver.unplug()
        fwd.wait_status(lambda s: s["output"]["state"] == "closed", 15)
        t_closed = time.monotonic()
        time.sleep(5)
        t1 = time.monotonic()
        receiver.replug()
        assert _wait_flow(traffic, receiver, t1)
        assert receiver.wait_for(lambda r: len(r.keys) == 2, 15), "keys not re-sent after the re-plug"
        time.sleep(1)
    finally:
        traffic.stop()
        sampler.stop()
    during = sampler.between(t_closed, t1)  # from the first "closed" status: it is written on each state change
    assert during and all(s["status"]["output"]["state"] == "closed" for s in during)
    assert all(not s["status"]["healthy"] for s in during), "healthy while the serial port was gone"
    d = L.analyse(traffic, receiver, t0, t1)
    # re-applied after the re-plug; the status file shows the new config state at once (within 0.5 s)
    assert fwd.wait_status(lambda s: s["receiver"]["config_state"] == "applied", 15)
    _common(fwd, pid, sampler, "serial_unplug_replug", d, fault_start=t0, fault_end=t1)


def test_receiver_reset_gets_keys_and_config_again(tmp_path, broker, receiver, replayer, daemons):
    replayer.publish_keys(L.lab_keys())
    fwd, _ = _mqtt_forwarder(tmp_path, broker, receiver, daemons)
    _ready(fwd, receiver)
    config = receiver.config
    assert config
    pid = fwd.pid
    traffic = L.Traffic(L.mqtt_sender(replayer)).start()
    sampler = L.Sampler(fwd).start()
    try:
        assert _wait_flow(traffic, receiver, time.monotonic())
        t0 = time.monotonic()
        loads = receiver.key_loads
        receiver.reset()  # the forwarder may re-send before this thread runs again: count loads, not the list
        assert receiver.wait_for(lambda r: r.key_loads > loads and len(r.keys) == 2 and r.config == config, 30), (
            "not re-configured"
        )
        t1 = time.monotonic()
        st = fwd.wait_status(
            lambda s: s["receiver"]["resets_detected"] >= 1 and s["receiver"]["config_state"] == "applied"
        )
        assert _wait_flow(traffic, receiver, t1)
    finally:
        traffic.stop()
        sampler.stop()
    assert fwd.metrics()["receiver_resets_total"] >= 1
    d = L.analyse(traffic, receiver, t0, t1)
    _common(
        fwd,
        pid,
        sampler,
        "receiver_reset",
        d,
        fault_start=t0,
        fault_end=t1,
        reconfigure_s=round(t1 - t0, 2),
        resets_detected=st["receiver"]["resets_detected"],
    )


@pytest.mark.parametrize("how", ["sighup", "file_change"])
def test_credentials_rotated(tmp_path, broker, receiver, replayer, daemons, how):  # noqa: PLR0917 - fixtures
    """New cert/key/keys written as the ztp module writes them; then SIGHUP (or nothing: the file watch)."""
    replayer.publish_keys(L.lab_keys())
    fwd, creds = _mqtt_forwarder(tmp_path, broker, receiver, daemons, keys=L.lab_keys())
    _ready(fwd, receiver)
    pid = fwd.pid
    old_cert = (creds.parent / "client.crt").read_bytes()
    traffic = L.Traffic(L.mqtt_sender(replayer)).start()
    sampler = L.Sampler(fwd).start()
    try:
        assert _wait_flow(traffic, receiver, time.monotonic())
        t0 = time.monotonic()
        new_keys = L.lab_keys(seed=1)
        want = [new_keys["current"]["value"], new_keys["next"]["value"]]
        # the service's retained key message carries the keys ZTP returns (else the old retained keys would follow
        # the file's after the reconnect); the loads counted after it are the ones the reload makes
        replayer.publish_keys(new_keys)
        assert receiver.wait_for(lambda r: [k["value"] for k in r.keys] == want, 15)
        loads = receiver.key_loads
        L.credentials(creds.parent, broker=broker, keys=new_keys, cn="rotated-" + L.CLIENT_ID[:8])
        assert (creds.parent / "client.crt").read_bytes() != old_cert
        if how == "sighup":
            fwd.signal(signal.SIGHUP)
        t1 = time.monotonic()
        assert receiver.wait_for(lambda r: r.key_loads > loads and [k["value"] for k in r.keys] == want, 30), (
            "rotated keys not sent"
        )
        assert _wait_flow(traffic, receiver, t1)
    finally:
        traffic.stop()
        sampler.stop()
    assert "reloading" in fwd.log()
    d = L.analyse(traffic, receiver, t0, t1)
    _common(fwd, pid, sampler, f"credentials_rotated_{how}", d, fault_start=t0, fault_end=t1)


def test_slow_receiver_stalls_its_output(tmp_path, broker, receiver, replayer, daemons):
    """The receiver stops reading for 20 s: health says "stalled" at once, the queue stays bounded (drops counted),
    nothing is split (a frame cut by the write timeout is finished after the reopen)."""
    replayer.publish_keys(L.lab_keys())
    fwd, _ = _mqtt_forwarder(
        tmp_path,
        broker,
        receiver,
        daemons,
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200, "queue_bytes": 8192},
    )
    _ready(fwd, receiver)
    pid = fwd.pid
    traffic = L.Traffic(L.mqtt_sender(replayer), rate=40, size=200).start()  # ~9 KB/s: fills pty + queue
    sampler = L.Sampler(fwd).start()
    try:
        assert _wait_flow(traffic, receiver, time.monotonic())
        t0 = time.monotonic()
        receiver.stall(True)
        # health says so within seconds, long before the write times out and the port is reopened
        stalled = fwd.wait_status(lambda s: s["output"]["state"] == "stalled", timeout=15)
        assert not stalled["healthy"]
        time.sleep(max(0.0, t0 + 20 - time.monotonic()))
        t1 = time.monotonic()
        receiver.stall(False)
        assert _wait_flow(traffic, receiver, t1)
        fwd.wait_status(lambda s: s["output"]["state"] == "open" and s["healthy"], timeout=15)
        time.sleep(2)
    finally:
        traffic.stop()
        sampler.stop()
    st = fwd.status()
    m = fwd.metrics()
    assert st["output"]["dropped_frames"] > 0, "a 20 s stall at 9 KB/s with an 8 KB queue must drop"
    assert m["frames_dropped_total"] == st["output"]["dropped_frames"] or m["frames_dropped_total"] > 0
    d = L.analyse(traffic, receiver, t0, t1)
    _common(
        fwd,
        pid,
        sampler,
        "slow_receiver_stall_20s",
        d,
        fault_start=t0,
        fault_end=t1,
        dropped_frames=st["output"]["dropped_frames"],
    )


def _cut_a_frame(fwd, receiver) -> int:
    """Stall the receiver until the forwarder's write of a frame is cut part-way; returns the log position after it.
    (The pty takes what fits: a frame straddles the full buffer, so a cut comes within a few seconds.)"""
    start = len(fwd.log())
    receiver.stall(True)
    deadline = time.monotonic() + 15
    while "a frame was cut after" not in fwd.log()[start:]:
        assert time.monotonic() < deadline, "no frame was cut by the stall"
        time.sleep(0.1)
    return start


def test_cut_frame_finished_when_the_same_receiver_stayed(tmp_path, broker, receiver, replayer, daemons):
    """Issue 17 (3): a stall cuts a frame and the port is reopened (the write timed out) while the device node stays:
    the receiver's parser still holds the head, so the rest goes first and the frame arrives whole."""
    replayer.publish_keys(L.lab_keys())
    output = {"type": "serial", "device": receiver.device_path, "baudrate": 115200, "queue_bytes": 8192}
    fwd, _ = _mqtt_forwarder(tmp_path, broker, receiver, daemons, output=output)
    _ready(fwd, receiver)
    pid = fwd.pid
    traffic = L.Traffic(L.mqtt_sender(replayer), rate=40, size=200).start()
    sampler = L.Sampler(fwd).start()
    try:
        assert _wait_flow(traffic, receiver, time.monotonic())
        t0 = time.monotonic()
        mark = _cut_a_frame(fwd, receiver)
        deadline = time.monotonic() + 20  # the write times out after 10 s: the same node is reopened
        while "reopening" not in fwd.log()[mark:]:
            assert time.monotonic() < deadline, fwd.log()[-3000:]
            time.sleep(0.1)
        time.sleep(1)
        t1 = time.monotonic()
        receiver.stall(False)
        assert _wait_flow(traffic, receiver, t1)
        time.sleep(1)
    finally:
        traffic.stop()
        sampler.stop()
    st = fwd.wait_status(lambda s: s["output"]["state"] == "open")
    assert st["output"]["cut_frames_dropped"] == 0 and "dropped the rest" not in fwd.log()
    assert fwd.metrics()["output_cut_frames_dropped_total"] == 0
    d = L.analyse(traffic, receiver, t0, t1)
    _common(fwd, pid, sampler, "cut_frame_same_receiver", d, fault_start=t0, fault_end=t1, cut_frames_dropped=0)


def test_cut_frame_dropped_after_a_power_cycle(tmp_path, broker, receiver, replayer, daemons):
    """Issue 17 (3): a frame is cut, then the receiver is unplugged and comes back power-cycled (a new pty behind
    the same path; its parser restarted): the rest of the frame is dropped and counted, never written to it."""
    replayer.publish_keys(L.lab_keys())
    output = {"type": "serial", "device": receiver.device_path, "baudrate": 115200, "queue_bytes": 8192}
    fwd, _ = _mqtt_forwarder(tmp_path, broker, receiver, daemons, output=output)
    _ready(fwd, receiver)
    pid = fwd.pid
    traffic = L.Traffic(L.mqtt_sender(replayer), rate=40, size=200).start()
    sampler = L.Sampler(fwd).start()
    try:
        assert _wait_flow(traffic, receiver, time.monotonic())
        t0 = time.monotonic()
        _cut_a_frame(fwd, receiver)
        receiver.unplug()  # what the stalled receiver had not read is lost with it, the cut frame's head too
        receiver.stall(False)
        fwd.wait_status(lambda s: s["output"]["state"] == "closed", 15)
        time.sleep(2)
        t1 = time.monotonic()
        loads = receiver.key_loads
        receiver.replug(power_cycle=True)
        assert _wait_flow(traffic, receiver, t1)
        assert receiver.wait_for(lambda r: r.key_loads > loads and len(r.keys) == 2, 15), "keys not re-sent"
        time.sleep(1)
    finally:
        traffic.stop()
        sampler.stop()
    d = L.analyse(traffic, receiver, t0, t1)
    L.assert_whole(d)  # the new receiver saw no garbage: finishing the frame would have sent it the rest
    st = fwd.wait_status(
        lambda s: s["output"]["cut_frames_dropped"] >= 1 and s["receiver"]["config_state"] == "applied"
    )
    assert st["output"]["cut_frames_dropped"] == 1, st["output"]
    assert "dropped the rest of a cut frame" in fwd.log()
    assert fwd.metrics()["output_cut_frames_dropped_total"] == 1
    _common(fwd, pid, sampler, "cut_frame_power_cycle", d, fault_start=t0, fault_end=t1, cut_frames_dropped=1)
