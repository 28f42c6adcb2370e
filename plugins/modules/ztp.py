#!/usr/bin/python
# Target side of gnss.pointperfect.ztp (stdlib only): reads the deployed credentials or writes them atomically.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


DOCUMENTATION = r"""
---
module: ztp
short_description: Provision a GNSS gateway with u-blox Thingstream PointPerfect Zero Touch Provisioning
version_added: 0.1.0
description:
  - Obtains PointPerfect credentials for one device (hardware id) from the Thingstream ZTP API and deploys them in
    O(dest) on the target as C(client.crt), C(client.key) and C(credentials.json).
  - The API call is made B(on the controller) with C(requests) and validated with C(cryptography); the token never
    travels to the target, which needs only the Python standard library.
  - The module first reads what is deployed in O(dest) (one round trip) and calls the API only when the credentials
    are missing, the certificate expires within O(renew_before_days), the hardware id differs, NTRIP credentials
    were last confirmed more than O(refresh_after_days) ago, or O(force=true). A no-op run makes no API call.
  - Dynamic keys never cause a call when MQTT credentials are deployed (the forwarder receives new keys live on the
    key topic). With NTRIP-only credentials they do only when the newest key ends within 7 days.
  - Both response shapes are accepted, MQTT (certificate, private key, broker, dynamic keys, subscriptions) and
    NTRIP (C(rtcmCredentials)); the plan, regions and topics are derived from the response. The response lists
    every region of the plan; the forwarder subscribes to one of them (see O(region)).
  - A 200 answer without credentials means the device is not activated yet, the usual answer to a device's first
    call; it is asked again within O(activation_timeout) seconds.
  - Everything is validated before anything is written. Files are written atomically (temporary file with the
    final mode and owner in O(dest), fsync, rename) and only when their bytes or attributes differ. The
    certificate and key are replaced before C(credentials.json), which is renamed last and acts as the commit
    record, so an interrupted write is detected (the recorded not-after no longer matches the certificate) and
    repaired by the next run. A refresh that returns identical credentials only updates the modification time of
    C(credentials.json) (the time of the last confirmation) and reports no change.
  - Errors are one-line messages that say what to do; an API refusal (HTTP 4xx) quotes the API's own reason. The
    token, private key, NTRIP password and dynamic key values never appear in results, diffs, warnings or errors.
author:
  - gnss.pointperfect maintainers (@gnss-pointperfect)
requirements:
  - On the controller, C(requests) and C(cryptography).
  - On the target, Python 3 standard library only.
extends_documentation_fragment:
  - gnss.pointperfect.attributes
  - gnss.pointperfect.attributes.ztp
options:
  token:
    description:
      - Device-profile token of the Thingstream location thing profile (a lowercase UUID of 36 characters).
      - The device profile must have "Return existing device details if Hardware Code is in use" enabled.
      - Only needed when the API is called. If not set, the environment variable E(POINTPERFECT_ZTP_TOKEN) of the
        controller is used.
      - A token that is set is checked on the controller on every run, before any API call; surrounding whitespace
        or upper-case letters fail with a one-line message (that never quotes the token).
    type: str
  hardware_id:
    description:
      - Unique hardware id of the device, for example V(hpg-a1b2c3).
      - 1 to 64 letters, digits, V(.), V(_), V(:) and V(-), checked on the controller before any API call.
        Thingstream publishes no limit; these bounds leave margin over MAC addresses, module ids, V(pp-) plus a
        machine id, and UUIDs.
    type: str
    required: true
  given_name:
    description:
      - Label of the device in Thingstream. Defaults to O(hardware_id).
    type: str
  tags:
    description:
      - Tags of the device in Thingstream.
    type: list
    elements: str
    default: []
  api_url:
    description:
      - URL of the ZTP credentials endpoint.
    type: str
    default: https://api.thingstream.io/ztp/pointperfect/credentials
  dest:
    description:
      - Directory on the target that holds the credentials. Created when missing.
    type: path
    default: /etc/pointperfect
  renew_before_days:
    description:
      - Call the API when the client certificate expires within this many days.
    type: int
    default: 30
  refresh_after_days:
    description:
      - Call the API when NTRIP credentials were last confirmed more than this many days ago (the modification
        time of C(credentials.json)).
    type: int
    default: 7
  force:
    description:
      - Call the API even when the deployed credentials are valid.
    type: bool
    default: false
  region:
    description:
      - Correction region the gateway uses, V(auto) (the forwarder picks it from the receiver position) or a region
        code of the plan, such as V(eu), V(us), V(kr), V(au) or V(jp). Names as the service writes them
        (V(EU), V(Japan)) are accepted too.
      - An explicit region the plan does not list fails with nothing written. It is checked against the API
        response, and against the deployed C(credentials.json) when no API call is needed (no call is made
        for the check).
      - Not checked for plans without correction regions (NTRIP and L-band only).
    type: str
    default: auto
  activation_timeout:
    description:
      - Seconds to keep asking while the API answers that the device is not activated yet (200 without
        credentials), 2, 4, 8, 15, 15... seconds apart. V(0) fails at the first such answer.
      - When the time runs out the task fails with nothing written.
    type: int
    default: 60
  timeout:
    description:
      - Timeout in seconds of one API request.
    type: int
    default: 30
  retries:
    description:
      - How many times a request is retried after HTTP 408, 429, 5xx, connection errors and timeouts, with jittered
        exponential backoff that honours C(Retry-After).
    type: int
    default: 3
  validate_certs:
    description:
      - Verify the TLS certificate of the API.
      - B(Setting this to V(false) is insecure.) The token then travels to whoever answers; every run warns.
        To trust a private or test CA (such as the simulator's), keep V(true) and set O(ca_path).
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle (PEM file on the controller) used to verify the API instead of the default trust store of
        C(requests).
      - Checked before the API is called, also in check mode when a call would be made. A missing, unreadable or
        non-PEM file fails with a one-line message naming O(ca_path).
    type: path
  owner:
    description:
      - Owner of C(client.key) and C(credentials.json). Default is the user running the module.
    type: str
  group:
    description:
      - Group of C(client.key) and C(credentials.json). Default is the primary group of that user.
    type: str
  mode:
    description:
      - Permissions of C(client.key) and C(credentials.json), an octal number (V('0640')) or an octal string.
        Symbolic modes are not supported. C(client.crt) is always C(0644).
    type: raw
    default: '0600'
notes:
  - The default trust store of C(requests) (certifi) contains Amazon Root CA 1, which the ZTP API chains to.
  - O(force=true) always calls the API; the API returns the same credentials for an existing device, so this
    changes nothing on disk unless Thingstream rotated them.
seealso:
  - name: PointPerfect
    description: u-blox PointPerfect GNSS augmentation service.
    link: https://www.u-blox.com/en/product/pointperfect
"""

EXAMPLES = r"""
- name: Provision the gateway (token from POINTPERFECT_ZTP_TOKEN on the controller)
  gnss.pointperfect.ztp:
    hardware_id: "{{ inventory_hostname }}"

- name: Provision with explicit token and shared group access for the forwarder
  gnss.pointperfect.ztp:
    token: "{{ vault_pointperfect_token }}"
    hardware_id: "hpg-{{ ansible_facts['default_ipv4']['macaddress'][-8:] | replace(':', '') }}"
    given_name: "{{ inventory_hostname }}"
    tags: [ztp, fleet-a]
    owner: root
    group: pointperfect
    mode: '0640'
  register: ztp

- name: Show what was provisioned
  ansible.builtin.debug:
    msg: "{{ ztp.plan }} via {{ ztp.service }}, certificate valid {{ ztp.days_remaining }} more days"

- name: Pin the gateway to the US corrections; wait up to 5 minutes for the device to be activated
  gnss.pointperfect.ztp:
    hardware_id: gw-02
    region: us
    activation_timeout: 300

- name: Renew early and refresh NTRIP credentials daily
  gnss.pointperfect.ztp:
    hardware_id: gw-01
    renew_before_days: 60
    refresh_after_days: 1
"""

RETURN = r"""
api_called:
  description: Whether the ZTP API was called in this run (never in check mode).
  returned: always
  type: bool
  sample: false
reason:
  description:
    - Why the API was (or would be) called, V(valid) when it was not needed.
    - Precedence when several apply is V(missing), V(hardware_id_changed), V(expiring), V(stale), V(forced).
  returned: always
  type: str
  choices: [missing, expiring, hardware_id_changed, stale, forced, valid]
  sample: valid
client_id:
  description: MQTT client id (the certificate's common name); V(null) for NTRIP-only plans.
  returned: success (V(null) in check mode until credentials are deployed)
  type: str
  sample: 9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f
plan:
  description: Plan derived from the response.
  returned: success (V(null) in check mode until credentials are deployed)
  type: str
  choices: [ip, lband, ip+lband, ntrip]
  sample: ip
service:
  description: Service the forwarder should use, V(ntrip) when NTRIP credentials are present, else V(mqtt).
  returned: success (V(null) in check mode until credentials are deployed)
  type: str
  choices: [mqtt, ntrip]
  sample: mqtt
broker_host:
  description: MQTT broker host; V(null) without MQTT credentials.
  returned: success (V(null) in check mode until credentials are deployed)
  type: str
  sample: pp.services.u-blox.com
broker_port:
  description: MQTT broker port (always 8883, the API has no port field); V(null) without MQTT credentials.
  returned: success (V(null) in check mode until credentials are deployed)
  type: int
  sample: 8883
region:
  description: The O(region) option as used, V(auto) or a region code.
  returned: always
  type: str
  sample: auto
regions:
  description: Region codes the plan covers, from the correction topics and their descriptions.
  returned: success (empty in check mode until credentials are deployed)
  type: list
  elements: str
  sample: [au, eu, jp, kr, us]
topics:
  description: MQTT topics derived from the subscriptions.
  returned: success (null values in check mode until credentials are deployed)
  type: dict
  contains:
    keys:
      description: Topic of the UBX RXM-SPARTNKEY frames.
      type: str
      sample: /pp/ubx/0236/ip
    corrections:
      description:
        - Top-level SPARTN correction topic of each region, of the plan's stream (C(/pp/ip/<region>) for IP,
          C(/pp/Lb/<region>) for IP + L-band); empty for L-band only plans.
      type: dict
      sample: {eu: /pp/ip/eu, us: /pp/ip/us}
    assistnow:
      description: AssistNow topic.
      type: str
      sample: /pp/ubx/mga
    frequencies:
      description: Topic of the L-band frequencies, V(null) when the plan has none.
      type: str
      sample: /pp/frequencies/Lb
ntrip:
  description: NTRIP caster details (no credentials); V(null) without NTRIP credentials.
  returned: success (V(null) in check mode until credentials are deployed)
  type: dict
  contains:
    host:
      description: Caster host.
      type: str
      sample: ppntrip.services.u-blox.com
    port:
      description: Caster TCP port.
      type: int
      sample: 2101
    mountpoint:
      description: Mountpoint.
      type: str
      sample: NEAR-SPARTN
    tls:
      description:
        - Caster TLS port, V(2102) for u-blox's caster on port 2101; V(null) for any other caster (no TLS port
          is published, set it on the forwarder).
      type: int
      sample: 2102
certificate_not_after:
  description: Expiry of the client certificate (UTC, ISO 8601); V(null) without a certificate.
  returned: success (V(null) in check mode until credentials are deployed)
  type: str
  sample: '2027-11-25T21:00:00Z'
days_remaining:
  description: Whole days until the certificate expires; V(null) without a certificate.
  returned: success (V(null) in check mode until credentials are deployed)
  type: int
  sample: 364
files:
  description: Credential files in O(dest) that the module manages (after the run; in check mode as they would be).
  returned: success
  type: list
  elements: path
  sample: [/etc/pointperfect/client.crt, /etc/pointperfect/client.key, /etc/pointperfect/credentials.json]
"""

import os  # noqa: E402 - Ansible modules import after DOCUMENTATION

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic, _credentials  # noqa: E402
from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import (  # noqa: E402
    CERT,
    CERT_MODE,
    CREDS,
    KEY,
)
from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import ztp_argument_spec  # noqa: E402
from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_state import read_state  # noqa: E402


def write_files(dest, contents, mode, uid, gid, *, remove=()):
    """Prepare every temp file first, then rename cert, key and finally credentials.json (the commit record)."""
    changed = False
    if not os.path.isdir(dest):
        os.makedirs(dest, 0o755)
        changed = True
    wanted = [(CERT, CERT_MODE, None, None), (KEY, mode, uid, gid), (CREDS, mode, uid, gid)]
    prepared = []
    try:
        for name, fmode, fuid, fgid in wanted:
            data = contents.get(name)
            if data is None:
                continue
            path = os.path.join(dest, name)
            current = _atomic.read_bytes(path)
            if current == data and not _atomic.attributes_differ(path, fmode, fuid, fgid):
                continue
            prepared.append((_atomic.prepare(path, data, fmode, fuid, fgid), path))
    except Exception:
        for tmp, _path in prepared:
            _atomic.discard(tmp)
        raise
    for i, (tmp, path) in enumerate(prepared):
        try:
            _atomic.commit(tmp, path)
        except _atomic.AtomicWriteError:
            for later, _path in prepared[i + 1 :]:
                _atomic.discard(later)
            raise
        changed = True
    creds = os.path.join(dest, CREDS)
    if _atomic.is_regular(creds) and not any(p == creds for _tmp, p in prepared):
        os.utime(creds, None, follow_symlinks=False)  # identical credentials confirmed: record the time, no change
    for name in remove:
        path = os.path.join(dest, name)
        if os.path.lexists(path):
            os.unlink(path)
            changed = True
    return changed


def fix_attributes(dest, mode, uid, gid):
    changed = False
    for name, fmode, fuid, fgid in ((CERT, CERT_MODE, None, None), (KEY, mode, uid, gid), (CREDS, mode, uid, gid)):
        path = os.path.join(dest, name)
        if _atomic.is_regular(path):  # a symlink, fifo or directory is never changed through (a write replaces it)
            changed = _atomic.set_attributes(path, fmode, fuid, fgid) or changed
    return changed


def managed_files(dest):
    return [os.path.join(dest, n) for n in _credentials.FILES if os.path.exists(os.path.join(dest, n))]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ztp_argument_spec(),
            # Data the action plugin passes in, not options: not in DOCUMENTATION (see tests/sanity/ignore-*.txt)
            # (plain types without choices or defaults, so that validate-modules has nothing else to compare)
            _state=dict(type="str"),
            _certificate=dict(type="str", no_log=True),
            _private_key=dict(type="str", no_log=True),
            _credentials=dict(type="str", no_log=True),
            _remove=dict(type="raw"),
            _probed_state=dict(type="dict"),  # used by the action plugin only, never sent to the target
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["_state"] not in ("read", "write", "attributes"):
        module.fail_json(msg="gnss.pointperfect.ztp runs through its action plugin; call it as a task, not directly")
    dest = p["dest"]
    try:
        mode = _atomic.parse_mode(p["mode"])
    except _atomic.AtomicWriteError as e:
        module.fail_json(msg=str(e))
    ids = []
    for resolve, name in ((_atomic.resolve_uid, p["owner"]), (_atomic.resolve_gid, p["group"])):
        try:
            ids.append(resolve(name))
        except _atomic.AtomicWriteError as e:
            if not module.check_mode:
                module.fail_json(msg=str(e))
            # check mode: an earlier task (skipped in check mode) may create it; -1 matches no file, so "would change"
            module.warn("%s; assuming an earlier task creates it" % e)
            ids.append(-1)
    uid, gid = ids
    if p["_state"] == "read":
        module.exit_json(changed=False, state=read_state(dest, mode, uid, gid))
    if module.check_mode:
        module.exit_json(changed=False, files=managed_files(dest))
    try:
        if p["_state"] == "attributes":
            changed = fix_attributes(dest, mode, uid, gid)
        else:
            contents = {CERT: p["_certificate"], KEY: p["_private_key"], CREDS: p["_credentials"]}
            contents = dict((k, None if v is None else v.encode("utf-8")) for k, v in contents.items())
            remove = [n for n in (p["_remove"] if isinstance(p["_remove"], list) else []) if n in (CERT, KEY)]
            changed = write_files(dest, contents, mode, uid, gid, remove=remove)
    except (_atomic.AtomicWriteError, OSError) as e:
        module.fail_json(
            msg="cannot write credentials in %s: %s; fix the directory permissions and run again"
            % (dest, str(e) if isinstance(e, _atomic.AtomicWriteError) else (e.strerror or e))
        )
    module.exit_json(changed=changed, files=managed_files(dest))


if __name__ == "__main__":
    main()
