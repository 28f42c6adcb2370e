"""End-to-end: `ansible-playbook gnss.pointperfect.provision` on 7 nspawn gateways against the ZTP simulator, a real
Mosquitto and real NTRIP casters: 4 on IP plans (three choose EU from their receivers' position, gw-06 is in the US
with a plan listing EU and US), 2 on NTRIP, and gw-07 on an L-band plan with a simulated NEO-D9S; then idempotence,
check/diff, one-host rotation and removal. The tests share one fleet and run in file order (each step builds on the
previous one)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections import Counter

import pytest
from pointperfect_sim import frames as F
from pointperfect_sim.proc import free_port

from .conftest import (
    CASTER_PASSWORD,
    EU_US_TOKEN,
    GUEST_D9S,
    LBAND_HOST,
    LBAND_TOKEN,
    MQTT_TOKEN,
    NTRIP_HOSTS,
    NTRIP_TOKEN,
    REGION_OF,
    US_HOST,
)

pytestmark = [pytest.mark.fleet, pytest.mark.lab, pytest.mark.slow]
SERVICE = "pointperfect-forwarder"
USBINPROT_SPARTN = 0x10770005
SPARTN_USE_SOURCE = 0x20A70001  # CFG-SPARTN-USE_SOURCE: 0 = IP, 1 = L-band
RXM_PMP = (0x02, 0x72)
TOKENS = (MQTT_TOKEN, NTRIP_TOKEN, EU_US_TOKEN, LBAND_TOKEN)
TIMINGS: dict[str, float] = {}
PORT = re.compile(r"Port=(\d+)")  # how ansible's ssh connection names a gateway (all are 127.0.0.1)


# ---------------------------------------------------------------- helpers


def gateways(fleet):
    return {gw.name: gw for gw in fleet.gateways}


def mqtt_names(fleet):
    return [n for n in gateways(fleet) if n not in NTRIP_HOSTS]


def receiver_of(fleet, receivers) -> dict:
    return {gw.name: receivers[i] for i, gw in enumerate(fleet.gateways)}


def sh(gw, command: str) -> str:
    return gw.run(command).stdout


def credentials(gw) -> dict:
    return json.loads(sh(gw, "cat /etc/pointperfect/credentials.json"))


def show(gw, prop: str) -> str:
    return sh(gw, f"systemctl show -p {prop} --value {SERVICE}").strip()


def status(gw) -> dict | None:
    proc = gw.run("cat /run/pointperfect/status.json", check=False)
    try:
        return json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        return None


def wait_connected(gws, timeout: float = 60) -> None:
    """Until every forwarder reports its input connected (status file, Contract 3)."""
    deadline = time.monotonic() + timeout
    pending = list(gws)
    while pending and time.monotonic() < deadline:
        pending = [gw for gw in pending if ((status(gw) or {}).get("input") or {}).get("state") != "connected"]
        if pending:
            time.sleep(0.5)
    assert not pending, {gw.name: status(gw) for gw in pending}


def metrics(gw) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode()


def metric_value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def contains_in_order(received: list[bytes], sent: list[bytes]) -> bool:
    """`sent` appears in `received` as one contiguous run, byte for byte."""
    return any(received[i : i + len(sent)] == sent for i in range(len(received) - len(sent) + 1))


def assert_delivery(lab, fleet, receivers, names, count: int = 12) -> None:
    """Frames published/fed now reach each named gateway's receiver whole, in order, byte-exact; an IP gateway gets
    its region's frames and none of the frames published at the same time on the plan's other correction topics."""
    by_name = gateways(fleet)
    rx_of = receiver_of(fleet, receivers)
    wait_connected([by_name[n] for n in names])
    ip = [n for n in names if n in REGION_OF]
    ntrip = [n for n in names if n in NTRIP_HOSTS]
    topics: dict[str, str] = {}  # every correction topic of the plans in play: region -> topic
    for name in ip:
        topics.update(credentials(by_name[name])["topics"]["corrections"])

    def send(per_region: dict[str, list[bytes]], fed: list[bytes]) -> None:
        for region, frames in per_region.items():
            for frame in frames:
                lab.replayer.publish(topics[region], frame)
        for name in ntrip:
            lab.casters[name].feed(b"".join(fed))

    def expected(name: str, per_region: dict[str, list[bytes]], fed: list[bytes]) -> list[bytes]:
        return per_region[REGION_OF[name]] if name in REGION_OF else fed

    def seen(name: str, frames: list[bytes]) -> bool:
        return contains_in_order([f.raw for f in rx_of[name].frames_of("spartn")], frames)

    # a probe per topic until every session is subscribed/streaming (connected does not mean subscribed yet)
    probe = {region: F.synthetic_spartn(1, size=40) for region in topics}
    probe_fed = F.synthetic_spartn(1, size=40)
    deadline = time.monotonic() + 30
    while not all(seen(n, expected(n, probe, probe_fed)) for n in names) and time.monotonic() < deadline:
        send(probe, probe_fed)
        time.sleep(0.5)
    assert all(seen(n, expected(n, probe, probe_fed)) for n in names), {
        n: len(rx_of[n].frames_of("spartn")) for n in names
    }

    sent = {region: F.synthetic_spartn(count) for region in topics}  # random payloads: distinct per topic
    sent_fed = F.synthetic_spartn(count)
    send(sent, sent_fed)
    for name in names:
        rx = rx_of[name]
        want = expected(name, sent, sent_fed)
        ok = rx.wait_for(lambda r, n=name, w=want: seen(n, w), timeout=30)
        got = len(rx.frames_of("spartn"))
        assert ok, f"{name}: published SPARTN frames did not arrive in order ({got} SPARTN frames seen)"
        assert rx.garbage_bytes == 0, f"{name}: {rx.garbage_bytes} bytes outside valid frames"
    time.sleep(1)  # frames of a second subscription would arrive with the expected ones
    for name in ip:
        foreign = {f for region in topics if region != REGION_OF[name] for f in probe[region] + sent[region]}
        received = {f.raw for f in rx_of[name].frames_of("spartn")}
        assert not received & foreign, f"{name}: got frames of another region's topic"


# ---------------------------------------------------------------- steps


def test_check_mode_on_fresh_gateways_predicts_without_touching(lab, fleet, playbook):
    before = lab.sim.calls()
    run = playbook("provision", "--check", "--diff", "-v")
    TIMINGS["check_fresh"] = run.seconds
    assert run.rc == 0, run.out[-6000:]
    assert all(r["changed"] > 0 and r["failed"] == 0 for r in run.recap.values()), run.recap
    assert lab.sim.calls() == before, "check mode called the ZTP API"
    assert not [s for s in TOKENS if s in run.out], "a token is in the output"
    for gw in fleet.gateways:
        left = gw.run("ls -d /etc/pointperfect /opt/pointperfect 2>/dev/null; getent passwd pointperfect", check=False)
        assert left.stdout.strip() == "", f"{gw.name}: check mode wrote {left.stdout}"


def check_files(lab, gw, name):
    """credentials.json, the file modes in /etc/pointperfect and forwarder.json of one provisioned gateway."""
    ntrip = name in NTRIP_HOSTS
    creds = credentials(gw)
    # hardware id derived from the machine id (pointperfect_hardware_id_source: machine_id): its app-specific
    # hash, never the machine id itself
    assert creds["hardware_id"] == gw.hardware_id and gw.machine_id not in creds["hardware_id"]
    assert creds["given_name"] == name
    assert creds["service"] == ("ntrip" if ntrip else "mqtt")
    # the plan lists every region it covers; the region is chosen on the gateway, not at provisioning
    if name == LBAND_HOST:
        assert creds["plan"] == "lband" and creds["topics"]["corrections"] == {}, creds["topics"]
        assert creds["topics"]["frequencies"] == "/pp/frequencies/Lb"
    elif name == US_HOST:
        assert creds["regions"] == ["eu", "us"]
        assert creds["topics"]["corrections"] == {"eu": "/pp/ip/eu", "us": "/pp/ip/us"}
    elif not ntrip:
        assert creds["regions"] == ["au", "eu", "jp", "kr", "us"], creds["regions"]
    modes = dict(
        line.split(" ", 1) for line in sh(gw, "cd /etc/pointperfect && stat -c '%n %a %U:%G' . * ").splitlines()
    )
    assert modes["."] == "750 root:pointperfect"
    assert modes["credentials.json"] == "640 root:pointperfect"
    assert modes["forwarder.json"] == "640 root:pointperfect"
    assert modes["ca.pem"] == "644 root:pointperfect"
    if ntrip:
        assert "client.key" not in modes and "client.crt" not in modes
    else:
        assert modes["client.key"] == "640 root:pointperfect"
        assert modes["client.crt"].split()[0] in ("644", "640")
    config = json.loads(sh(gw, "cat /etc/pointperfect/forwarder.json"))
    assert config["input"] == creds["service"]
    assert config["output"]["device"] == "/dev/ttyACM0"
    assert config["mqtt"]["region"] == "auto"
    assert config["receiver"]["source"] == ("lband" if name == LBAND_HOST else "ip")
    assert config["lband"]["device"] == (GUEST_D9S if name == LBAND_HOST else None)
    if ntrip:  # not u-blox's caster: the TLS port comes from the inventory
        assert config["ntrip"]["port"] == lab.casters[name].tls_port and config["ntrip"]["tls"] is True
    assert config["health"]["metrics_port"] == gw.metrics_port
    assert CASTER_PASSWORD not in json.dumps(config)


def check_service(gw, name):
    """The forwarder service: active under systemd, as the dedicated user, with the serial group, sandboxed."""
    assert show(gw, "ActiveState") == "active", sh(gw, f"journalctl -u {SERVICE} --no-pager -n 50")
    assert show(gw, "SubState") == "running"
    assert show(gw, "User") == "pointperfect"
    assert show(gw, "NRestarts") == "0"
    exposure = sh(gw, f"systemd-analyze security --no-pager {SERVICE} | tail -n 1")
    TIMINGS[f"exposure_{name}"] = float(exposure.split(":")[1].split()[0])
    assert TIMINGS[f"exposure_{name}"] <= 2.0, exposure
    allowed = show(gw, "DeviceAllow")
    assert "/dev/ttyACM0 rw" in allowed and ((GUEST_D9S + " rw") in allowed) == (name == LBAND_HOST), allowed
    pid = show(gw, "MainPID")
    assert "dialout" in sh(gw, f"ps -o group=,supgrp= -p {pid}")
    assert sh(gw, f"ps -o user= -p {pid}").strip() == "pointperfect"
    # the offline install: the unpacked zipapp of the marker's build, no venv or pip, run as the unit says, every
    # source byte-compiled at install by the gateway's Python (the service's filesystem is read-only)
    build = sh(gw, "cat /opt/pointperfect/.pointperfect-build").strip()
    assert sh(gw, "readlink /opt/pointperfect/forwarder").strip() == f"forwarder-{build}"
    assert sh(gw, "ls -A /opt/pointperfect").split() == [".pointperfect-build", "forwarder", f"forwarder-{build}"]
    assert sh(gw, f"tr '\\0' ' ' < /proc/{pid}/cmdline").startswith(
        "/usr/bin/python3 -I -B /opt/pointperfect/forwarder "
    )
    missing = "find /opt/pointperfect/forwarder/ -name '*.py' | while read -r f; do "
    missing += 'c="${f%/*}/__pycache__/$(basename "${f%.py}").cpython-311.pyc"; [ -f "$c" ] || echo "$f"; done'
    assert sh(gw, missing).strip() == "", "sources without their byte-code"


def check_keys_first(rx, dk, name):
    """The receiver got RXM-SPARTNKEY with the dynamic keys `dk` before any correction, then its configuration."""
    expected = [
        {"week": w, "tow": t, "value": dk[k]["value"]}
        for k in ("current", "next")
        for w, t in [F.gps_week_tow(dk[k]["start"])]
    ]
    assert rx.wait_for(lambda r: any(f.ubx_id == (0x02, 0x36) for f in r.frames), timeout=30), name
    kinds = [(f.kind, f.ubx_id) for f in rx.frames]
    first_key = kinds.index(("ubx", (0x02, 0x36)))
    first_spartn = next((i for i, k in enumerate(kinds) if k[0] == "spartn"), len(kinds))
    assert first_key < first_spartn, f"{name}: a correction came before the keys"
    keyframe = rx.frames[first_key]
    assert F.parse_spartnkey_payload(keyframe.payload) == expected, name
    assert rx.wait_for(lambda r: r.config.get(USBINPROT_SPARTN) == 1, timeout=20), f"{name}: {rx.config}"
    source = 1 if name == LBAND_HOST else 0
    assert rx.wait_for(lambda r, v=source: r.config.get(SPARTN_USE_SOURCE) == v, timeout=20), rx.config


def test_provision_fleet(lab, fleet, receivers, playbook):
    before = lab.sim.calls()  # the lab is shared with the other e2e modules: count this run's calls only
    run = playbook("provision")
    TIMINGS["provision"] = run.seconds
    assert run.rc == 0, run.out[-6000:]
    assert set(run.recap) == set(gateways(fleet)), run.recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0 for r in run.recap.values())
    # each new device is "not activated" on its first call: the module retried once within the run
    calls = lab.sim.calls()
    assert calls["total"] - before["total"] == 2 * len(fleet.gateways), calls
    by_device = {d: n - before["by_device"].get(d, 0) for d, n in calls["by_device"].items()}
    assert sorted(n for n in by_device.values() if n) == [2] * len(fleet.gateways), calls

    rx_of = receiver_of(fleet, receivers)
    for name, gw in gateways(fleet).items():
        check_files(lab, gw, name)
        check_service(gw, name)

    # keys first: the receiver got RXM-SPARTNKEY with the credentials' dynamic keys before any correction
    for name in mqtt_names(fleet):
        check_keys_first(rx_of[name], credentials(gateways(fleet)[name])["dynamickeys"], name)

    # corrections: replayed into the broker and the casters, byte-exact at every receiver, each IP gateway only its
    # region's; GGA reached each caster (a caster streams nothing before it)
    assert_delivery(lab, fleet, receivers, [n for n in gateways(fleet) if n != LBAND_HOST])
    for name, caster in lab.casters.items():
        assert caster.wait_gga(1, timeout=20), f"no GGA reached {name}'s caster"

    for gw in fleet.gateways:
        text = metrics(gw)
        assert metric_value(text, "pointperfect_forwarder_up") == 1, gw.name
        assert metric_value(text, "pointperfect_forwarder_input_connected") == 1, gw.name


def test_region_auto_chooses_from_the_receiver_position(lab, fleet):
    """Every IP gateway subscribed exactly one correction topic: the region holding its receiver's position."""
    for name, region in REGION_OF.items():
        gw = gateways(fleet)[name]
        st = status(gw)
        assert st["region"]["selected"] == region and st["region"]["source"] == "position", (name, st["region"])
        assert st["region"]["topic"] == f"/pp/ip/{region}", (name, st["region"])
        assert st["region"]["available"] == credentials(gw)["regions"], (name, st["region"])
        assert st["lband"]["mode"] == "off", (name, st["lband"])
        info = [ln for ln in metrics(gw).splitlines() if ln.startswith("pointperfect_forwarder_region_info{")]
        assert len(info) == 1 and f'region="{region}"' in info[0] and 'source="position"' in info[0], info
        assert info[0].endswith(" 1.0"), info
    # the US gateway got the /pp/ip/us frames and none of /pp/ip/eu (assert_delivery checked it byte for byte)


def test_lband_gateway_relays_the_d9s(lab, fleet, receivers, d9s):
    """gw-07: keys, CFG-SPARTN-USE_SOURCE=1, a D9S tuned to the EU frequency, and its RXM-PMP frames whole and in
    order at the main receiver; no correction topic."""
    gw = gateways(fleet)[LBAND_HOST]
    rx = receiver_of(fleet, receivers)[LBAND_HOST]
    wait_connected([gw])
    eu_hz = round(float(F.LBAND_FREQUENCIES_MHZ["eu"]) * 1e6)
    assert d9s.wait_for(lambda d: d.tuned, timeout=30), d9s.tune_problem()  # only the EU beam is receivable
    assert d9s.pmp_config["CENTER_FREQUENCY"] == eu_hz, d9s.pmp_config
    assert rx.config.get(SPARTN_USE_SOURCE) == 1 and rx.keys, (rx.config, rx.keys)
    assert rx.wait_for(lambda r: len([f for f in r.frames if f.ubx_id == RXM_PMP]) >= 5, timeout=30), len(rx.frames)
    received = [f.raw for f in rx.frames if f.ubx_id == RXM_PMP]
    emitted = d9s.emitted  # after `received`: every received frame was emitted before
    assert contains_in_order(emitted, received), f"{len(received)} RXM-PMP frames received, {len(emitted)} emitted"
    assert rx.garbage_bytes == 0 and rx.frames_of("spartn") == []  # no IP correction topic in L-band mode
    deadline = time.monotonic() + 10  # the status file is rewritten every ~2 s
    while (status(gw) or {}).get("lband", {}).get("pmp_frames", 0) < len(received) and time.monotonic() < deadline:
        time.sleep(0.5)
    st = status(gw)
    assert st["lband"]["mode"] == "d9s" and st["lband"]["d9s_state"] == "applied", st["lband"]
    assert st["lband"]["frequency_hz"] == eu_hz and st["lband"]["pmp_frames"] >= len(received), st["lband"]
    assert st["region"]["selected"] == "eu" and st["region"]["topic"] is None, st["region"]
    assert st["healthy"] is True, st


def ssh_counter(tmp_path):
    """(env, count): an ssh shim first in PATH that logs each invocation (one SSH round trip to a gateway, as in
    bench/fleet), and count() -> {port: invocations}."""
    bindir, log = tmp_path / "bin", tmp_path / "ssh.log"
    bindir.mkdir()
    log.touch()
    shim = bindir / "ssh"
    shim.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {log}\nexec {shutil.which("ssh")} "$@"\n')
    shim.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")}
    return env, lambda: Counter(m.group(1) for ln in log.read_text().splitlines() if (m := PORT.search(ln)))


def test_second_run_changes_nothing_and_calls_no_api(lab, fleet, playbook, tmp_path):
    """A nightly no-op run needs no secret: no token in the environment nor in the inventory (the extra var beats
    the host_vars tokens), and valid credentials mean no API call, so nothing asks for one. It costs exactly one SSH
    round trip per gateway: the probe; the controller decides the rest and leaves the role."""
    before = lab.sim.calls()
    invocations = {gw.name: show(gw, "InvocationID") for gw in fleet.gateways}
    ssh_env, trips = ssh_counter(tmp_path)
    run = playbook("provision", "-e", "pointperfect_ztp_token=", env={"POINTPERFECT_ZTP_TOKEN": "", **ssh_env})
    TIMINGS["idempotent"] = run.seconds
    assert run.rc == 0, run.out[-6000:]
    assert run.changed() == {name: 0 for name in gateways(fleet)}, run.out[-6000:]
    assert lab.sim.calls() == before, "a no-op run called the ZTP API"
    assert {gw.name: show(gw, "InvocationID") for gw in fleet.gateways} == invocations
    assert trips() == {str(gw.ssh_port): 1 for gw in fleet.gateways}, run.out[-6000:]
    # every gateway left the role after the probe and the build check (meta: end_role, decided in the controller's
    # main process, the ZTP decision included): the account, ZTP, install, config and service steps were not even
    # started (each task costs every host a worker process on the controller), nor was absent.yml's include evaluated,
    # nor did Ansible's automatic argument validation run (the probe's action checks the same specification)
    assert "Leave the role when the gateway is already as wanted" in run.out, run.out[-6000:]
    steps = ("Install, configure and start the forwarder", "Remove the forwarder", "Install the forwarder build",
             "Deploy the CA bundle", "Enable and start the forwarder", "Provision PointPerfect credentials (ZTP)",
             "Create the serial group", "Validating arguments against arg spec")  # fmt: skip
    for step in steps:
        assert step not in run.out, (step, run.out[-6000:])


def test_check_diff_shows_no_change_and_no_secret(lab, fleet, playbook):
    before = lab.sim.calls()
    run = playbook("provision", "--check", "--diff", "-v")
    TIMINGS["check_diff"] = run.seconds
    assert run.rc == 0, run.out[-6000:]
    assert run.changed() == {name: 0 for name in gateways(fleet)}, run.out[-6000:]
    assert lab.sim.calls() == before
    secrets = {*TOKENS, CASTER_PASSWORD}
    for name in mqtt_names(fleet):
        gw = gateways(fleet)[name]
        key_lines = [ln for ln in sh(gw, "cat /etc/pointperfect/client.key").splitlines() if "-----" not in ln]
        secrets.update(ln for ln in key_lines if len(ln) > 20)
        dk = credentials(gw)["dynamickeys"]
        secrets.update(dk[k]["value"] for k in ("current", "next"))
    leaked = [s[:6] + "..." for s in secrets if s in run.out]
    assert not leaked, f"secrets in --check --diff -v output: {leaked}"


def test_drifted_config_directory_is_repaired_without_restart(lab, fleet, playbook):
    gw = gateways(fleet)["gw-02"]
    invocation = show(gw, "InvocationID")
    sh(gw, "chmod 0755 /etc/pointperfect && chgrp root /etc/pointperfect")
    before = lab.sim.calls()
    run = playbook("provision", "--limit", "gw-02")
    assert run.rc == 0, run.out[-6000:]
    assert run.changed() == {"gw-02": 1}, run.out[-6000:]
    assert sh(gw, "stat -c '%a %U %G' /etc/pointperfect").split() == ["750", "root", "pointperfect"]
    assert lab.sim.calls() == before
    assert show(gw, "InvocationID") == invocation


def test_a_start_systemd_refuses_fails_in_one_line_and_the_fixed_run_recovers(lab, fleet, playbook, tmp_path):
    """A unit systemd cannot start (an ExecStartPre= that fails, through pointperfect_systemd_extra): the restart fails
    the gateway with one line naming systemd's refusal (its own message spans two lines), and the next run without it
    restores the unit and the service."""
    gw = gateways(fleet)["gw-02"]
    extra = tmp_path / "refused.json"
    extra.write_text(json.dumps({"pointperfect_systemd_extra": {"ExecStartPre": "/bin/false"}}))
    before = lab.sim.calls()
    run = playbook("provision", "--limit", "gw-02", "-e", f"@{extra}")
    assert run.rc != 0, run.out[-6000:]
    fatal = [ln for ln in run.out.splitlines() if ln.startswith("fatal: [gw-02]")]
    assert len(fatal) == 1, run.out[-6000:]
    msg = json.loads(fatal[0].split("=> ", 1)[1])["msg"]
    assert msg.startswith("gw-02: the forwarder did not start: Unable to "), msg
    assert "pointperfect-forwarder" in msg and "journalctl -u pointperfect-forwarder" in msg, msg
    assert "\n" not in msg and "  " not in msg, msg
    run = playbook("provision", "--limit", "gw-02")
    assert run.rc == 0, run.out[-6000:]
    assert run.changed()["gw-02"] > 0, run.out[-6000:]
    assert "ExecStartPre" not in sh(gw, "cat /etc/systemd/system/pointperfect-forwarder.service")
    assert show(gw, "ActiveState") == "active"
    assert lab.sim.calls() == before  # the credentials were never in question


def test_mac_hardware_id_source_in_check_mode(lab, fleet, playbook):
    """hardware_id_source=mac derives pp-<MAC of the default IPv4 interface>, or fails naming the missing fact."""
    gw = gateways(fleet)["gw-01"]
    iface = sh(gw, "awk '$2 == \"00000000\" {print $1; exit}' /proc/net/route").strip()
    mac = sh(gw, f"cat /sys/class/net/{iface}/address").strip() if iface else ""
    before = lab.sim.calls()
    run = playbook("provision", "--check", "-v", "--limit", "gw-01", "-e", "pointperfect_hardware_id_source=mac")
    assert lab.sim.calls() == before  # check mode: no API call, whatever the id
    if mac:
        assert run.rc == 0, run.out[-6000:]
        assert f"pp-{mac.replace(':', '')}" in run.out
        assert "hardware_id_changed" in run.out  # the deployed credentials belong to the machine-id based id
    else:  # no default IPv4 route on this machine: the role says which fact is missing
        assert run.rc != 0
        assert "make sure the mac fact exists on gw-01" in run.out


def test_rolling_upgrade_stops_after_a_batch_with_a_failing_gateway(lab, fleet, playbook, inventory):
    """Batches of 2 (gw-01/02, gw-03/04, gw-05/06, gw-07); a config change restarts each batch's forwarders. gw-03
    gets a broker port nobody listens on, so its health gate fails: its batch finishes (gw-04 upgraded), the run
    fails and the later batches are not touched. A default run then restores the whole fleet."""
    by_name = gateways(fleet)
    invocations = {name: show(gw, "InvocationID") for name, gw in by_name.items()}
    broken = inventory / "host_vars" / "gw-03.yml"
    assert not broken.exists()
    broken.write_text(f"pointperfect_mqtt_port: {free_port()}\n")
    try:
        run = playbook(
            "provision",
            "-e",
            "pointperfect_batch_size=2",
            "-e",
            "pointperfect_summary_interval=11",
            "-e",
            "pointperfect_health_timeout=15",
        )
    finally:
        broken.unlink()
    TIMINGS["rolling_stopped"] = run.seconds
    assert run.rc != 0, run.out[-6000:]
    assert set(run.recap) == {"gw-01", "gw-02", "gw-03", "gw-04"}, run.recap  # the later batches never started
    assert run.recap["gw-03"]["failed"] == 1, run.recap
    assert "gw-03: the forwarder did not report its input connected within 15 s" in run.out, run.out[-6000:]
    assert "the rolling upgrade stops here: gw-03 failed or could not be reached, so gw-05, gw-06, gw-07" in run.out
    for name in ("gw-01", "gw-02", "gw-04"):  # upgraded and healthy (gw-04 carries the stop of its batch)
        assert run.recap[name]["changed"] > 0, run.recap
        assert show(by_name[name], "InvocationID") != invocations[name], name
    assert run.recap["gw-01"]["failed"] == 0 and run.recap["gw-02"]["failed"] == 0, run.recap
    for name in ("gw-05", "gw-06", "gw-07"):
        gw = by_name[name]
        assert show(gw, "InvocationID") == invocations[name], name
        assert json.loads(sh(gw, "cat /etc/pointperfect/forwarder.json"))["health"]["summary_interval"] == 10

    # the default rolling run (batches of 5) restores the inventory's config everywhere, gw-03 included
    run = playbook("provision")
    TIMINGS["rolling_restore"] = run.seconds
    assert run.rc == 0, run.out[-6000:]
    for gw in fleet.gateways:
        assert json.loads(sh(gw, "cat /etc/pointperfect/forwarder.json"))["health"]["summary_interval"] == 10
    wait_connected(fleet.gateways)


def test_rotation_of_one_device_changes_and_restarts_only_that_host(lab, fleet, receivers, playbook, inventory):
    gw = gateways(fleet)["gw-01"]
    hwid = credentials(gw)["hardware_id"]
    old_cert = sh(gw, "cat /etc/pointperfect/client.crt")
    lab.sim.client().rotate(MQTT_TOKEN, hwid)
    before_calls = lab.sim.calls()
    invocations = {g.name: show(g, "InvocationID") for g in fleet.gateways}
    since = sh(gw, "date +%s").strip()

    host_vars = inventory / "host_vars" / "gw-01.yml"
    host_vars.write_text("pointperfect_ztp_force: true\n")
    try:
        run = playbook("provision")
    finally:
        host_vars.unlink()
    TIMINGS["rotate"] = run.seconds
    assert run.rc == 0, run.out[-6000:]
    changed = run.changed()
    assert changed.pop("gw-01") > 0
    assert changed == {name: 0 for name in changed}, run.out[-6000:]
    calls = lab.sim.calls()
    assert calls["total"] - before_calls["total"] == 1
    assert calls["by_device"][f"{MQTT_TOKEN}/{hwid}"] == before_calls["by_device"][f"{MQTT_TOKEN}/{hwid}"] + 1
    assert sh(gw, "cat /etc/pointperfect/client.crt") != old_cert

    # exactly one restart of gw-01 (new invocation, one start in the journal, no crash restarts); others untouched
    now = {g.name: show(g, "InvocationID") for g in fleet.gateways}
    assert now.pop("gw-01") != invocations.pop("gw-01")
    assert now == invocations
    journal = sh(gw, f"journalctl -u {SERVICE} --since @{since} -o cat --no-pager")
    starts = [ln for ln in journal.splitlines() if ln.startswith("Started ")]
    assert len(starts) == 1, journal
    assert show(gw, "NRestarts") == "0"
    assert show(gw, "ActiveState") == "active"
    # the rotated certificate works: corrections still flow to gw-01
    assert_delivery(lab, fleet, receivers, ["gw-01"])


def test_absent_keeping_credentials_then_everything(fleet, playbook):
    gw = gateways(fleet)["gw-01"]
    kept = sh(gw, "sha256sum /etc/pointperfect/client.key /etc/pointperfect/credentials.json")
    run = playbook("deprovision", "--limit", "gw-01", "-e", "pointperfect_keep_credentials=true")
    assert run.rc == 0 and set(run.recap) == {"gw-01"}, run.out[-6000:]
    assert sh(gw, "sha256sum /etc/pointperfect/client.key /etc/pointperfect/credentials.json") == kept
    assert gw.run("ls /etc/pointperfect/forwarder.json /opt/pointperfect", check=False).returncode != 0
    assert show(gw, "LoadState") == "not-found"

    run = playbook("deprovision")
    TIMINGS["absent"] = run.seconds
    assert run.rc == 0, run.out[-6000:]
    assert all(r["changed"] > 0 and r["failed"] == 0 for r in run.recap.values()), run.out[-6000:]
    for gw in fleet.gateways:
        leftovers = gw.run(
            "ls -d /etc/pointperfect /opt/pointperfect /etc/systemd/system/pointperfect-forwarder.service "
            "/run/pointperfect 2>/dev/null; getent passwd pointperfect; getent group pointperfect; "
            "pgrep -f '^/usr/bin/python3 -I -B /opt/pointperfect/'; "
            "systemctl list-units --all --no-legend 'pointperfect*'",
            check=False,
        ).stdout.strip()
        assert leftovers == "", f"{gw.name}: {leftovers}"
        with pytest.raises(OSError):
            metrics(gw)
    again = playbook("deprovision")
    assert again.rc == 0 and again.changed() == {name: 0 for name in gateways(fleet)}, again.out[-6000:]
    print("e2e timings (s):", json.dumps(TIMINGS))
