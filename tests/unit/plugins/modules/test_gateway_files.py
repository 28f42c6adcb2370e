"""Unit tests of gateway_files' module part: compare, validate, atomic write, check mode, spec sync."""

import os
import stat

import pytest
import yaml
from ansible_collections.gnss.pointperfect.plugins.modules import gateway_files as module


class FakeModule:
    """Just what deploy() uses of AnsibleModule."""

    def __init__(self, rc=0):
        self.rc = rc
        self.commands = []

    def run_command(self, argv):
        self.commands.append(argv)
        return self.rc, "", "bad config" if self.rc else ""

    def fail_json(self, **kw):
        raise RuntimeError(kw["msg"])


def spec(path, content="x\n", **kw):
    return dict({"path": str(path), "state": "present", "content": content, "mode": "0640", "secret": False}, **kw)


def test_write_then_noop_then_attributes(tmp_path):
    path = tmp_path / "f.json"
    assert module.deploy(FakeModule(), spec(path), False)[0] == "created"
    assert path.read_text() == "x\n" and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert module.deploy(FakeModule(), spec(path), False)[0] == "none"
    os.chmod(path, 0o644)
    assert module.deploy(FakeModule(), spec(path), False)[0] == "attributes"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert module.deploy(FakeModule(), spec(path, "y\n"), False)[0] == "content"
    assert path.read_text() == "y\n"
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "f"
    assert module.deploy(FakeModule(), spec(path, group="no-such-group-xyz"), True)[0] == "created"
    assert module.deploy(FakeModule(), spec(tmp_path / "missing-dir" / "f"), True)[0] == "created"
    assert not path.exists()
    path.write_text("old")
    assert module.deploy(FakeModule(), spec(path), True)[0] == "content"
    assert path.read_text() == "old"


def test_validate_runs_on_candidate_and_failure_keeps_live_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("live")
    ok = FakeModule()
    module.deploy(ok, spec(path, "new", validate="checker --config %s"), False)
    assert ok.commands[0][:2] == ["checker", "--config"] and ok.commands[0][2] != str(path)
    bad = FakeModule(rc=1)
    with pytest.raises(RuntimeError, match="validation failed"):
        module.deploy(bad, spec(path, "newer", validate="checker %s"), False)
    assert path.read_text() == "new"
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_absent(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("ca")
    assert module.deploy(FakeModule(), {"path": str(path), "state": "absent"}, True)[0] == "removed"
    assert path.exists()
    assert module.deploy(FakeModule(), {"path": str(path), "state": "absent"}, False)[0] == "removed"
    assert not path.exists()
    assert module.deploy(FakeModule(), {"path": str(path), "state": "absent"}, False)[0] == "none"


def test_secret_diff_hides_content(tmp_path):
    entry = module.diff_entry(spec(tmp_path / "k", secret=True), "content", b"old-secret", b"new-secret")
    assert "secret" not in (entry["before"] + entry["after"]).replace("secret content", "")


def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(doc) == set(module.ARGUMENT_SPEC)
    assert set(doc["files"]["suboptions"]) == set(module.FILE_SPEC)
    for name, opt in module.FILE_SPEC.items():
        assert doc["files"]["suboptions"][name]["type"] == opt["type"], name


def test_relative_paths_are_refused_before_anything_is_written(tmp_path):
    files = [spec(tmp_path / "ok.json"), spec("etc/forwarder.json")]
    with pytest.raises(module._atomic.AtomicWriteError, match=r"must be an absolute path, got etc/forwarder\.json"):
        module.check_absolute(files)
    module.check_absolute(files[:1])


def test_symlink_at_destination_is_replaced_and_target_untouched(tmp_path):
    target = tmp_path / "outside"
    target.write_text("x\n")  # same content: only the link's "attributes" differ
    os.chmod(target, 0o600)
    path = tmp_path / "f.json"
    path.symlink_to(target)
    assert module.deploy(FakeModule(), spec(path), False)[0] == "created"
    assert not path.is_symlink() and path.read_text() == "x\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_absent_removes_a_symlink_without_reading_through(tmp_path):
    target = tmp_path / "outside"
    target.write_text("secret\n")
    path = tmp_path / "f"
    path.symlink_to(target)
    reason, before, _ = module.deploy(FakeModule(), spec(path, state="absent"), False)
    assert reason == "removed" and before is None and target.read_text() == "secret\n"
