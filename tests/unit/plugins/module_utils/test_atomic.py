"""Unit tests of the stdlib atomic writer: attributes applied before rename, failures leave the old file."""

import os
import stat

import pytest
from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic as a


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_has_mode_and_no_leftovers(tmp_path):
    target = tmp_path / "client.key"
    assert a.write_atomic(str(target), b"secret\n", 0o640) is True
    assert target.read_bytes() == b"secret\n"
    assert mode_of(target) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["client.key"]


def test_identical_is_no_change(tmp_path):
    target = tmp_path / "f"
    a.write_atomic(str(target), b"x", 0o600)
    inode = os.stat(target).st_ino
    assert a.write_atomic(str(target), b"x", 0o600) is False
    assert os.stat(target).st_ino == inode


def test_mode_change_alone_rewrites(tmp_path):
    target = tmp_path / "f"
    a.write_atomic(str(target), b"x", 0o600)
    assert a.write_atomic(str(target), b"x", 0o644) is True
    assert mode_of(target) == 0o644


def test_mode_applied_before_rename(tmp_path, monkeypatch):
    target = tmp_path / "client.key"
    target.write_bytes(b"old")
    seen = {}
    real_rename = os.rename

    def spy(src, dst):
        seen["mode"] = mode_of(src)
        with open(src, "rb") as f:
            seen["content"] = f.read()
        with open(dst, "rb") as f:
            seen["target_before"] = f.read()
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    a.write_atomic(str(target), b"new", 0o640, uid=os.getuid(), gid=os.getgid())
    assert seen == {"mode": 0o640, "content": b"new", "target_before": b"old"}


def test_failed_prepare_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "credentials.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(a.AtomicWriteError, match="No space left on device") as exc:
        a.write_atomic(str(target), b"new-secret", 0o600)
    assert "new-secret" not in str(exc.value)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["credentials.json"]


def test_failed_rename_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def broken_rename(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(a.AtomicWriteError, match="cannot replace"):
        a.write_atomic(str(target), b"new", 0o600)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_unwritable_directory(tmp_path):
    if os.getuid() == 0:
        pytest.skip("root ignores directory permissions")
    os.chmod(tmp_path, 0o500)
    with pytest.raises(a.AtomicWriteError):
        a.write_atomic(str(tmp_path / "f"), b"x", 0o600)


def test_set_attributes(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"x")
    os.chmod(target, 0o644)
    assert a.set_attributes(str(target), 0o600) is True
    assert mode_of(target) == 0o600
    assert a.set_attributes(str(target), 0o600) is False


@pytest.mark.parametrize(
    ("value", "expected"), [(0o640, 0o640), ("0640", 0o640), ("640", 0o640), ("0o600", 0o600), (384, 0o600)]
)
def test_parse_mode(value, expected):
    assert a.parse_mode(value) == expected


@pytest.mark.parametrize("value", ["u=rw", "999", "-1", 0o17777, True])
def test_parse_mode_rejects(value):
    with pytest.raises(a.AtomicWriteError):
        a.parse_mode(value)


def test_owner_and_group_resolution():
    assert a.resolve_uid(None) is None
    assert a.resolve_uid("0") == 0
    assert a.resolve_uid("root") == 0
    assert a.resolve_gid("0") == 0
    with pytest.raises(a.AtomicWriteError, match="does not exist"):
        a.resolve_uid("no-such-user-pp")
    with pytest.raises(a.AtomicWriteError, match="does not exist"):
        a.resolve_gid("no-such-group-pp")


def _outside(tmp_path, mode=0o600):
    target = tmp_path / "outside" / "secret"
    target.parent.mkdir()
    target.write_bytes(b"elsewhere\n")
    os.chmod(target, mode)
    return target


def test_symlink_at_destination_is_replaced_not_followed(tmp_path):
    target = _outside(tmp_path)
    link = tmp_path / "f"
    link.symlink_to(target)
    assert a.read_bytes(str(link)) is None  # treated as missing
    assert a.attributes_differ(str(link), 0o640)
    assert a.write_atomic(str(link), b"new\n", 0o640) is True
    assert not link.is_symlink() and link.read_bytes() == b"new\n"
    assert target.read_bytes() == b"elsewhere\n" and stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_set_attributes_never_changes_through_a_symlink(tmp_path):
    target = _outside(tmp_path)
    link = tmp_path / "f"
    link.symlink_to(target)
    with pytest.raises(a.AtomicWriteError, match="not a regular file"):
        a.set_attributes(str(link), 0o644)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_fifo_and_directory_read_as_missing(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert a.read_bytes(str(fifo)) is None  # no block on a fifo without a writer
    assert a.write_atomic(str(fifo), b"x", 0o600) is True
    assert fifo.is_file() and fifo.read_bytes() == b"x"
    (tmp_path / "d").mkdir()
    assert a.read_bytes(str(tmp_path / "d")) is None
    assert not a.is_regular(str(tmp_path / "d"))
