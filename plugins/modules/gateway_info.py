#!/usr/bin/python
# Read-only snapshot of one gateway in one round trip: credentials summary (Contract 1), forwarder status file
# (Contract 3) and the forwarder's systemd state. Never changes anything and never returns secrets.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


DOCUMENTATION = r"""
---
module: gateway_info
short_description: Report the PointPerfect state of a gateway without changing it
version_added: 0.1.0
description:
  - Reads, in one round trip, the summary of C(credentials.json) in O(dest), the forwarder status file
    O(status_file) and the systemd state of O(service) on the target.
  - Never returns key values, private keys or passwords, and never changes the target.
  - Missing pieces are reported as states, not failures, so one pass over a fleet always completes
    (not provisioned, service absent, status file stale or corrupt, systemd not available).
  - Python 3 standard library only on the target.
  - Called C(gnss.pointperfect.gateway_status) before 0.1.0 was released; that name still works (a redirect).
author:
  - gnss.pointperfect maintainers (@gnss-pointperfect)
extends_documentation_fragment:
  - gnss.pointperfect.attributes.info_module
options:
  dest:
    description: Directory holding C(credentials.json) as written by M(gnss.pointperfect.ztp).
    type: path
    default: /etc/pointperfect
  status_file:
    description: Status file the forwarder rewrites on every change and at least every 10 seconds.
    type: path
    default: /run/pointperfect/status.json
  service:
    description: systemd unit name of the forwarder (C(.service) may be omitted).
    type: str
    default: pointperfect-forwarder
  stale_after:
    description:
      - Age in seconds of the status file's C(updated_at) (or, without it, of its mtime) after which the file
        is reported as V(stale). The forwarder rewrites it on every change of its states and at least every
        10 seconds.
    type: int
    default: 30
  python:
    description:
      - Interpreter that runs the forwarder; checked like the gateway role's preflight (version, needed modules),
        together with systemd as PID 1. A failing check is reported in RV(gateway.preflight), never a failure.
      - Not set, the platform is not checked (RV(gateway.preflight) has no problems).
    type: path
  wait_input_up:
    description:
      - Wait on the target, up to this many seconds, until the forwarder's input is up (RV(gateway.input_up)), and
        report the state then. The target polls every half second, so the wait costs one round trip however long
        it lasts (the gateway role's health gate after a restart).
      - V(0) reads once, without waiting.
    type: int
    default: 0
    version_added: 0.1.0
notes:
  - Reading C(credentials.json) usually needs privileges (mode 0600 or 0640); run with O(ignore:become=true) or
    the file is reported as V(unreadable).
  - Timestamps are ISO 8601 UTC strings ending in C(Z); day and second counts use the target's clock.
seealso:
  - module: gnss.pointperfect.ztp
"""

EXAMPLES = r"""
- name: Read the gateway's PointPerfect state
  gnss.pointperfect.gateway_info:
  register: gw

- name: Show days until the certificate expires
  ansible.builtin.debug:
    msg: "{{ gw.gateway.credentials.certificate_days_remaining }}"

- name: After a restart, wait up to 30 s for the forwarder to report its input up (one round trip)
  gnss.pointperfect.gateway_info:
    wait_input_up: 30
  register: gw
  failed_when: not gw.gateway.input_up

- name: Non-default locations
  gnss.pointperfect.gateway_info:
    dest: /opt/pp/etc
    status_file: /opt/pp/run/status.json
    service: pp-forwarder
    stale_after: 60
"""

RETURN = r"""
gateway:
  description: Snapshot of the gateway.
  returned: always
  type: dict
  contains:
    collected_at:
      description: Target clock when the snapshot was taken.
      type: str
      returned: always
      sample: "2025-11-25T21:00:00Z"
    input_up:
      description:
        - Whether the forwarder runs with its input up, the condition O(wait_input_up) waits for - the service
          active, the status file fresh and written by the service's main process (the same PID, not a file left by
          an earlier process), and its input V(connected) or V(waiting_for_position) (an NTRIP input that waits
          for the receiver's first fix).
      type: bool
      returned: always
      sample: true
    waited:
      description: Seconds spent waiting for RV(gateway.input_up) (V(0) without O(wait_input_up)).
      type: float
      returned: always
      sample: 1.5
    credentials:
      description:
        - Summary of C(credentials.json). C(state) is V(ok), V(missing) (not provisioned), V(unreadable) or
          V(corrupt); other keys are present when C(state=ok).
        - C(regions) lists every region of the plan; the forwarder subscribes to one of them.
        - Contains no key value, private key or password.
      type: dict
      returned: always
      sample:
        state: ok
        path: /etc/pointperfect/credentials.json
        last_confirmed_at: "2025-11-20T10:00:00Z"
        hardware_id: gw-01
        given_name: gw-01
        plan: ip
        service: mqtt
        client_id: 4f1b0e0c-0000-4000-8000-000000000001
        regions: [eu, us]
        certificate_not_after: "2026-11-25T21:00:00Z"
        certificate_days_remaining: 365.0
        dynamickeys:
          current: {valid_from: "2025-11-01T00:00:00Z", valid_until: "2025-11-29T00:00:00Z", valid: true,
                    days_remaining: 3.1}
          next: {valid_from: "2025-11-29T00:00:00Z", valid_until: "2025-12-27T00:00:00Z", valid: false,
                 days_remaining: 31.1}
    status:
      description:
        - The forwarder status file (Contract 3) under C(data), with C(state) V(ok), V(missing), V(unreadable),
          V(corrupt) or V(stale), and C(age) in seconds since C(updated_at) (or the file's mtime).
        - C(data.region) says which correction region the forwarder chose (C(selected), null while it waits for a
          position) and why (C(source) V(position), V(fixed_position), V(inventory) or V(plan)); C(data.lband) gives
          the L-band mode (V(off), V(keys_only) or V(d9s)).
      type: dict
      returned: always
      sample:
        state: ok
        path: /run/pointperfect/status.json
        age: 1.4
        data:
          format: 1
          healthy: true
          bytes_per_second: 512.0
          region: {selected: us, source: position, available: [eu, us], topic: /pp/ip/us}
          lband: {mode: "off", device: null, frequency_hz: null, d9s_state: null, pmp_frames: 0}
    service:
      description:
        - systemd state of the forwarder. C(state) is V(active), V(activating), V(inactive), V(failed),
          V(absent) (unit not installed) or V(unknown) (no systemd, or systemctl failed; see C(error)).
      type: dict
      returned: always
      sample:
        state: active
        name: pointperfect-forwarder.service
        load_state: loaded
        active_state: active
        sub_state: running
        n_restarts: 0
        exec_main_start_timestamp: "Tue 2025-11-25 20:00:00 UTC"
        main_pid: 1234
        error: null
    preflight:
      description:
        - The platform checks of the gateway role's preflight for O(python) and systemd (facts, and C(problems),
          each a C(check) and a one-line C(message) naming the cause and the fix). The fleet report shows a gateway
          whose forwarder does not run and that has problems here as V(unsupported).
      type: dict
      returned: always
      sample:
        python: {path: /usr/bin/python3, version: 3.9.2, missing_modules: [], error: null, min_python: "3.10"}
        systemd: {booted: true, pid1: systemd}
        problems:
          - check: python
            message: Python 3.9.2 on the gateway; the forwarder needs 3.10+ (Debian 12, Ubuntu 22.04, Raspberry Pi
              OS bookworm or later)
"""

# ruff: noqa: E402 -- Ansible plugins keep DOCUMENTATION/EXAMPLES/RETURN above the imports.
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gnss.pointperfect.plugins.module_utils import _preflight
from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import (
    CERT,
    CREDS,
    SUMMARY_FIELDS,
    days_left,
    iso,
    parse_iso,
)

SYSTEMD_PROPERTIES = ("LoadState", "ActiveState", "SubState", "NRestarts", "ExecMainStartTimestamp", "MainPID")


def _read_json(path):
    """(state, data, error, mtime) for a JSON object file; state is ok|missing|unreadable|corrupt."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
            mtime = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return "missing", None, None, None
    except OSError as exc:
        return "unreadable", None, "%s: %s" % (path, exc.strerror or exc), None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return "corrupt", None, "%s: not valid JSON (%s)" % (path, exc), mtime
    if not isinstance(data, dict):
        return "corrupt", None, "%s: not a JSON object" % path, mtime
    return "ok", data, None, mtime


def _key_summary(key, now):
    """Validity of one dynamic key {start, duration, value} (ms) without its value."""
    if not isinstance(key, dict):
        return None
    try:
        start = float(key["start"]) / 1000.0
        end = start + float(key["duration"]) / 1000.0
    except (KeyError, TypeError, ValueError):
        return {
            "valid_from": None,
            "valid_until": None,
            "valid": False,
            "days_remaining": None,
            "error": "malformed key entry",
        }
    return {
        "valid_from": iso(start),
        "valid_until": iso(end),
        "valid": start <= now < end,
        "days_remaining": days_left(end, now, 2),
    }


def credentials_summary(dest, now):
    """Summary of <dest>/credentials.json; never includes secrets."""
    path = os.path.join(dest, CREDS)
    state, data, error, mtime = _read_json(path)
    result = {"state": state, "path": path, "error": error}
    if state != "ok":
        return result
    # only the secret-free fields are copied; the ntrip password, key values and mqtt paths stay put
    for field in SUMMARY_FIELDS:
        result[field] = data.get(field)
    result["last_confirmed_at"] = iso(mtime) if mtime is not None else None
    not_after = parse_iso(data.get("certificate_not_after"))
    result["certificate_days_remaining"] = days_left(not_after, now, 2)
    keys = data.get("dynamickeys")
    if isinstance(keys, dict):
        result["dynamickeys"] = {
            "current": _key_summary(keys.get("current"), now),
            "next": _key_summary(keys.get("next"), now),
        }
    else:
        result["dynamickeys"] = None
    result["has_certificate"] = os.path.exists(os.path.join(dest, CERT))
    return result


def status_summary(path, now, stale_after):
    """The Contract 3 status file with its age and a state (ok|missing|unreadable|corrupt|stale)."""
    state, data, error, mtime = _read_json(path)
    result = {"state": state, "path": path, "error": error, "age": None, "data": data}
    if state != "ok":
        if mtime is not None:
            result["age"] = round(now - mtime, 1)
        return result
    updated = parse_iso(data.get("updated_at"))
    reference = updated if updated is not None else mtime
    result["age"] = round(now - reference, 1)
    if result["age"] > stale_after:
        result["state"] = "stale"
    return result


def parse_systemctl_show(text):
    """`systemctl show` KEY=VALUE lines -> dict."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def service_summary(unit, run):
    """systemd state via `systemctl show`; run(argv) -> (rc, out, err), or run is None when there is no systemctl."""
    name = unit if "." in unit else unit + ".service"
    result = {
        "state": "unknown",
        "name": name,
        "load_state": None,
        "active_state": None,
        "sub_state": None,
        "n_restarts": None,
        "exec_main_start_timestamp": None,
        "main_pid": None,
        "error": None,
    }
    if run is None:
        result["error"] = "systemctl not found"
        return result
    rc, out, err = run(["show", name, "--property=" + ",".join(SYSTEMD_PROPERTIES)])
    props = parse_systemctl_show(out)
    if rc != 0 or "ActiveState" not in props:
        # e.g. "System has not been booted with systemd as init system"
        result["error"] = (err or out or "systemctl show exited %d" % rc).strip().splitlines()[0]
        return result
    result["load_state"] = props.get("LoadState") or None
    result["active_state"] = props.get("ActiveState") or None
    result["sub_state"] = props.get("SubState") or None
    try:
        result["n_restarts"] = int(props.get("NRestarts", ""))
    except ValueError:
        result["n_restarts"] = None
    try:
        pid = int(props.get("MainPID", ""))
        result["main_pid"] = pid or None
    except ValueError:
        result["main_pid"] = None
    result["exec_main_start_timestamp"] = props.get("ExecMainStartTimestamp") or None
    if result["load_state"] == "not-found":
        result["state"] = "absent"
    elif result["active_state"] in ("active", "reloading"):
        result["state"] = "active"
    elif result["active_state"] in ("activating", "deactivating", "inactive", "failed"):
        result["state"] = result["active_state"]
    return result


# the input states of a forwarder that does its job (NTRIP: connected once the receiver has a position)
INPUT_UP_STATES = ("connected", "waiting_for_position")


def input_up(status, service):
    """The forwarder runs with its input up: the service active, its status fresh and written by its main process,
    and the input in INPUT_UP_STATES."""
    data = status.get("data") if isinstance(status.get("data"), dict) else {}
    state = (data.get("input") or {}).get("state") if isinstance(data.get("input"), dict) else None
    return (
        service.get("state") == "active"
        and status.get("state") == "ok"
        and service.get("main_pid") is not None
        and data.get("pid") == service.get("main_pid")
        and state in INPUT_UP_STATES
    )


def platform(python):
    """What the role's preflight checks of the platform (the fleet report shows a failing gateway unsupported); no
    check without `python`."""
    return _preflight.gather({"python": python, "systemd": True}) if python else {"problems": []}


def gather(dest, status_file, service, stale_after, run, *, now=None, preflight=None):
    """The whole snapshot; `run` as in service_summary, `preflight` as platform() returns it (read once by the
    caller: the wait polls the rest)."""
    now = time.time() if now is None else now
    status, unit = status_summary(status_file, now, stale_after), service_summary(service, run)
    return {
        "collected_at": iso(now),
        "credentials": credentials_summary(dest, now),
        "status": status,
        "service": unit,
        "input_up": input_up(status, unit),
        "waited": 0,
        "preflight": preflight if preflight is not None else {"problems": []},
    }


def wait_for_input_up(read, timeout, *, clock=time.monotonic, sleep=time.sleep, interval=0.5):
    """read() until its snapshot's input_up, or until `timeout` seconds have passed; the last snapshot, with the
    seconds waited."""
    start = clock()
    snapshot = read()
    while not snapshot["input_up"] and clock() - start < timeout:
        sleep(min(interval, max(0.0, timeout - (clock() - start))))
        snapshot = read()
    snapshot["waited"] = round(clock() - start, 1)
    return snapshot


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", default="/etc/pointperfect"),
            status_file=dict(type="path", default="/run/pointperfect/status.json"),
            service=dict(type="str", default="pointperfect-forwarder"),
            stale_after=dict(type="int", default=30),
            python=dict(type="path"),
            wait_input_up=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    systemctl = module.get_bin_path("systemctl")
    run = None
    if systemctl:

        def run(args):
            return module.run_command([systemctl, *args], environ_update={"LC_ALL": "C", "SYSTEMD_PAGER": ""})

    if module.params["wait_input_up"] < 0:
        module.fail_json(msg="wait_input_up must be 0 (no wait) or more seconds")

    p = module.params
    preflight = platform(p["python"])

    def read():
        return gather(p["dest"], p["status_file"], p["service"], p["stale_after"], run, preflight=preflight)

    module.exit_json(changed=False, gateway=wait_for_input_up(read, module.params["wait_input_up"]))


if __name__ == "__main__":
    main()
