"""Unit tests of the module part (target side): state read without secrets, ordered atomic writes, spec sync."""

import ast
import datetime
import hashlib
import inspect
import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from ansible_collections.gnss.pointperfect.plugins.action import ztp as action
from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic
from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import parse_iso, public_view
from ansible_collections.gnss.pointperfect.plugins.modules import ztp as module
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _ztp_response as resp
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_decision import decide
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_deployed import deployed_from_state

from tests.unit.ztp_samples import KEY_A, KEY_B, make_pair, mqtt_body, ntrip_body

REPO = Path(__file__).resolve().parents[4]


def files_of(model, dest, hwid="gw-01"):
    doc = resp.credentials_document(model, hwid, hwid, str(dest))
    contents = {module.CREDS: doc}
    if model["certificate_pem"]:
        contents[module.CERT] = model["certificate_pem"].encode()
        contents[module.KEY] = model["private_key_pem"].encode()
    return contents


def snapshot(dest):
    return {n: hashlib.sha256((dest / n).read_bytes()).hexdigest() for n in sorted(os.listdir(dest))}


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def mqtt_model(pki):
    return resp.parse_credentials(mqtt_body(pki, rtcmCredentials=ntrip_body()["rtcmCredentials"]))


def test_write_then_read_state_has_no_secrets(tmp_path, mqtt_model):
    dest = tmp_path / "pp"
    assert module.write_files(str(dest), files_of(mqtt_model, dest), 0o600, None, None) is True
    assert mode_of(dest / "client.crt") == 0o644
    assert mode_of(dest / "client.key") == 0o600
    assert mode_of(dest / "credentials.json") == 0o600
    state = module.read_state(str(dest), 0o600, None, None)
    dumped = json.dumps(state)
    for secret in ("PRIVATE KEY", KEY_A, KEY_B, "s3cret-pass", "user-1"):
        assert secret not in dumped
    creds = state["credentials"]
    assert creds["hardware_id"] == "gw-01"
    assert creds["keys_end_ms"] == 1663977582000 + 2419199999
    assert creds["ntrip"] == {
        "host": "ppntrip.services.u-blox.com",
        "port": 2101,
        "tls_port": 2102,
        "mountpoint": "NEAR-RTCM",
    }
    assert all(f["attributes_ok"] for f in state["files"].values())
    assert state["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_identical_write_only_touches_credentials_mtime(tmp_path, mqtt_model):
    dest = tmp_path / "pp"
    contents = files_of(mqtt_model, dest)
    module.write_files(str(dest), contents, 0o600, None, None)
    old = 1_600_000_000
    os.utime(dest / "credentials.json", (old, old))
    os.utime(dest / "client.key", (old, old))
    before = snapshot(dest)
    assert module.write_files(str(dest), contents, 0o600, None, None) is False
    assert snapshot(dest) == before
    assert os.stat(dest / "credentials.json").st_mtime > old + 1000
    assert os.stat(dest / "client.key").st_mtime == old


def test_mode_difference_rewrites(tmp_path, mqtt_model):
    dest = tmp_path / "pp"
    contents = files_of(mqtt_model, dest)
    module.write_files(str(dest), contents, 0o600, None, None)
    assert module.write_files(str(dest), contents, 0o640, None, None) is True
    assert mode_of(dest / "client.key") == 0o640
    assert module.read_state(str(dest), 0o600, None, None)["files"]["client.key"]["attributes_ok"] is False


def test_commit_order_is_cert_key_then_credentials(tmp_path, mqtt_model, monkeypatch):
    dest = tmp_path / "pp"
    order = []
    real = _atomic.commit
    monkeypatch.setattr(_atomic, "commit", lambda tmp, path: (order.append(os.path.basename(path)), real(tmp, path)))
    module.write_files(str(dest), files_of(mqtt_model, dest), 0o600, None, None)
    assert order == ["client.crt", "client.key", "credentials.json"]


def test_prepare_failure_leaves_everything_untouched(tmp_path, pki, mqtt_model, monkeypatch):
    dest = tmp_path / "pp"
    module.write_files(str(dest), files_of(mqtt_model, dest), 0o600, None, None)
    before = snapshot(dest)
    new = resp.parse_credentials(mqtt_body(pki, certificate=pki["other_cert"], privateKey=pki["other_key"]))
    real = _atomic.prepare

    def fail_on_json(path, data, mode, uid=None, gid=None):
        if path.endswith("credentials.json"):
            raise _atomic.AtomicWriteError(f"cannot write a temporary file for {path}: No space left on device")
        return real(path, data, mode, uid, gid)

    monkeypatch.setattr(_atomic, "prepare", fail_on_json)
    with pytest.raises(_atomic.AtomicWriteError):
        module.write_files(str(dest), files_of(new, dest), 0o600, None, None)
    assert snapshot(dest) == before
    assert sorted(os.listdir(dest)) == ["client.crt", "client.key", "credentials.json"]


def test_interrupted_commit_is_detected_as_missing(tmp_path, pki, mqtt_model, monkeypatch):
    """If renaming credentials.json fails after cert/key were replaced, the next run re-provisions."""
    dest = tmp_path / "pp"
    module.write_files(str(dest), files_of(mqtt_model, dest), 0o600, None, None)
    cert, key, _ = make_pair(days=200)
    new = resp.parse_credentials(mqtt_body(pki, certificate=cert, privateKey=key))
    real = _atomic.commit

    def fail_on_json(tmp, path):
        if path.endswith("credentials.json"):
            _atomic.discard(tmp)
            raise _atomic.AtomicWriteError(f"cannot replace {path}: Input/output error")
        return real(tmp, path)

    monkeypatch.setattr(_atomic, "commit", fail_on_json)
    with pytest.raises(_atomic.AtomicWriteError):
        module.write_files(str(dest), files_of(new, dest), 0o600, None, None)
    assert sorted(os.listdir(dest)) == ["client.crt", "client.key", "credentials.json"]  # no temp files left
    state = module.read_state(str(dest), 0o600, None, None)
    deployed = deployed_from_state(state)
    decision = decide(deployed, "gw-01", state["now"])
    assert (decision.reason, decision.detail) == ("missing", "client certificate does not match credentials.json")


def test_switch_to_ntrip_removes_certificate_and_key(tmp_path, mqtt_model):
    dest = tmp_path / "pp"
    module.write_files(str(dest), files_of(mqtt_model, dest), 0o600, None, None)
    ntrip = resp.parse_credentials(ntrip_body())
    assert (
        module.write_files(str(dest), files_of(ntrip, dest), 0o600, None, None, remove=[module.CERT, module.KEY])
        is True
    )
    assert sorted(os.listdir(dest)) == ["credentials.json"]
    deployed = deployed_from_state(module.read_state(str(dest), 0o600, None, None))
    assert deployed["ntrip"] and not deployed["mqtt"]


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"format": 2}'])
def test_unreadable_credentials_read_as_missing(tmp_path, content):
    (tmp_path / "credentials.json").write_bytes(content)
    state = module.read_state(str(tmp_path), 0o600, None, None)
    assert state["credentials"] is None and state["credentials_error"]
    assert deployed_from_state(state) == {"credentials": False, "fingerprint": None}


def test_broken_certificate_on_disk_reads_as_not_ok(tmp_path, mqtt_model):
    module.write_files(str(tmp_path), files_of(mqtt_model, tmp_path), 0o600, None, None)
    (tmp_path / "client.crt").write_text("garbage")
    deployed = deployed_from_state(module.read_state(str(tmp_path), 0o600, None, None))
    assert deployed["credentials"] and not deployed.get("certificate_ok")


def test_fix_attributes(tmp_path, mqtt_model):
    module.write_files(str(tmp_path), files_of(mqtt_model, tmp_path), 0o600, None, None)
    os.chmod(tmp_path / "client.crt", 0o600)
    os.chmod(tmp_path / "credentials.json", 0o666)
    assert module.fix_attributes(str(tmp_path), 0o600, None, None) is True
    assert mode_of(tmp_path / "client.crt") == 0o644
    assert mode_of(tmp_path / "credentials.json") == 0o600
    assert module.fix_attributes(str(tmp_path), 0o600, None, None) is False


def test_argument_specs_match_documentation():
    """The action plugin, the module part and DOCUMENTATION declare the same options (one shared definition)."""
    tree = ast.parse(inspect.getsource(module))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "AnsibleModule")
    spec_node = next(k.value for k in call.keywords if k.arg == "argument_spec")
    # the module part takes the public options from the shared definition and adds only internal ones
    assert [ast.unparse(a) for a in spec_node.args] == ["ztp_argument_spec()"]
    assert all(k.arg.startswith("_") for k in spec_node.keywords)
    assert module.ztp_argument_spec() == action.ARGUMENT_SPEC
    doc = yaml.safe_load(module.DOCUMENTATION)
    public_doc = {name for name in doc["options"] if not name.startswith("_")}
    assert set(action.ARGUMENT_SPEC) == public_doc
    for name, spec in action.ARGUMENT_SPEC.items():
        assert doc["options"][name]["type"] == spec["type"], name
        assert doc["options"][name].get("default") == spec.get("default"), name
        assert bool(doc["options"][name].get("required")) == bool(spec.get("required")), name
    assert action.ARGUMENT_SPEC["token"]["no_log"] is True
    # The data the action plugin passes to the module part is no option: undocumented (ansible-doc does not show
    # it), with plain specs that validate-modules has nothing to compare with (tests/sanity/ignore-*.txt).
    internal = {
        k.arg: {kw.arg: ast.literal_eval(kw.value) for kw in k.value.keywords}
        for k in spec_node.keywords
        if k.arg.startswith("_")
    }
    assert set(internal) == {"_state", "_certificate", "_private_key", "_credentials", "_remove", "_probed_state"}
    # the probe's state the action decides on (gateway role): declared for linters, never sent to the target
    assert internal["_probed_state"] == action.PRIVATE_SPEC["_probed_state"]
    assert not any(name.startswith("_") for name in doc["options"])
    for name, spec in internal.items():
        assert set(spec) <= {"type", "no_log"}, name
    assert all(internal[name]["no_log"] is True for name in ("_certificate", "_private_key", "_credentials"))
    ignores = sorted((REPO / "tests" / "sanity").glob("ignore-*.txt"))
    assert [p.name for p in ignores] == ["ignore-2.18.txt", "ignore-2.19.txt", "ignore-2.20.txt"]
    for path in ignores:
        assert path.read_text().startswith("plugins/modules/ztp.py validate-modules:undocumented-parameter # _state, ")


def test_action_helpers(pki, mqtt_model):
    expected = datetime.datetime(2027, 11, 25, 21, tzinfo=datetime.timezone.utc).timestamp()
    assert parse_iso("2027-11-25T21:00:00Z", strict=True) == expected  # how the action reads the recorded not-after
    assert parse_iso("nope", strict=True) is None and parse_iso(None, strict=True) is None
    view = public_view(resp.credentials_dict(mqtt_model, "gw-01", "gw-01", "/etc/pointperfect"))
    text = action.summary(view, mqtt_model["fingerprint"])
    assert "fingerprint_sha256: " + mqtt_model["fingerprint"] in text
    assert "ntrip://ppntrip.services.u-blox.com:2101/NEAR-RTCM (tls 2102)" in text
    for secret in ("s3cret-pass", KEY_A, "PRIVATE"):
        assert secret not in text
    assert action.summary({}, None) == ""


def _run_main(args, capsys, check_mode=False):
    """module.main() in-process, as Ansible runs it; returns the parsed JSON result and what went to stderr.

    In-process (controller code imported), module warnings go to the controller's display, i.e. stderr.
    """
    from ansible.module_utils import basic  # noqa: PLC0415 - module arguments are patched per call

    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check_mode)}
    basic._ANSIBLE_ARGS = json.dumps(payload).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    with pytest.raises(SystemExit):
        module.main()
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


@pytest.mark.parametrize("field", ["owner", "group"])
def test_unknown_owner_or_group(tmp_path, mqtt_model, capsys, field):
    """Fails for real; in check mode (where the role's user/group task did not run) it predicts a change instead."""
    module.write_files(str(tmp_path), files_of(mqtt_model, tmp_path), 0o600, None, None)
    args = {"hardware_id": "gw-01", "dest": str(tmp_path), field: "pp-no-such-name", "_state": "read"}
    real, _err = _run_main(args, capsys)
    assert real["failed"] and "pp-no-such-name" in real["msg"] and "does not exist" in real["msg"]
    check, err = _run_main(args, capsys, check_mode=True)
    assert not check.get("failed"), check
    assert "pp-no-such-name" in json.dumps(check.get("warnings")) + err
    assert not check["state"]["files"][module.CREDS]["attributes_ok"]


def _outside_key(tmp_path):
    target = tmp_path / "elsewhere" / "secret.key"
    target.parent.mkdir()
    target.write_bytes(b"not ours\n")
    os.chmod(target, 0o600)
    return target


def test_fix_attributes_never_chmods_through_a_client_key_symlink(tmp_path):
    """NTRIP-only deployment with client.key a symlink to a 0600 file outside dest: it stays 0600."""
    dest = tmp_path / "pp"
    module.write_files(str(dest), files_of(resp.parse_credentials(ntrip_body()), dest), 0o640, None, None)
    target = _outside_key(tmp_path)
    (dest / "client.key").symlink_to(target)
    module.fix_attributes(str(dest), 0o640, None, None)
    assert mode_of(target) == 0o600
    state = module.read_state(str(dest), 0o640, None, None)
    assert state["files"]["client.key"]["regular"] is False


@pytest.mark.parametrize("name", ["client.key", "client.crt", "credentials.json"])
def test_symlink_at_a_destination_is_replaced_never_followed(tmp_path, mqtt_model, name):
    dest = tmp_path / "pp"
    dest.mkdir()
    target = _outside_key(tmp_path)
    (dest / name).symlink_to(target)
    state = module.read_state(str(dest), 0o640, None, None)
    assert state["files"][name]["regular"] is False
    assert state["credentials"] is None and state["certificate_pem"] is None
    assert module.write_files(str(dest), files_of(mqtt_model, dest), 0o640, None, None) is True
    assert not (dest / name).is_symlink() and (dest / name).is_file()
    assert mode_of(target) == 0o600 and target.read_bytes() == b"not ours\n"


def test_fifo_at_a_destination_is_replaced(tmp_path, mqtt_model):
    dest = tmp_path / "pp"
    dest.mkdir()
    os.mkfifo(dest / "credentials.json")
    state = module.read_state(str(dest), 0o600, None, None)  # does not block on the fifo
    assert state["credentials"] is None
    module.write_files(str(dest), files_of(mqtt_model, dest), 0o600, None, None)
    assert (dest / "credentials.json").is_file()


def test_gateway_probe_returns_no_secret_of_deployed_credentials(tmp_path, mqtt_model):
    """The probe reads the credentials directory for the ztp decision and hashes the deployed files: neither the
    private key nor the NTRIP password, user name or key values leave the gateway."""
    from ansible_collections.gnss.pointperfect.plugins.modules import gateway_probe  # noqa: PLC0415

    dest = tmp_path / "pp"
    module.write_files(str(dest), files_of(mqtt_model, dest), 0o600, None, None)
    params = dict(machine_id=False, account=None, config_dir=str(dest), unit=None, build_marker=None, preflight=None,
                  service=None, credentials={"dest": str(dest), "owner": None, "group": None, "mode": "0600"},
                  files=[str(dest / n) for n in module._credentials.FILES])  # fmt: skip
    dumped = json.dumps(gateway_probe.probe(params))
    for secret in ("PRIVATE KEY", KEY_A, KEY_B, "s3cret-pass", "user-1"):
        assert secret not in dumped
    assert json.loads(dumped)["credentials"]["credentials"]["hardware_id"] == "gw-01"
