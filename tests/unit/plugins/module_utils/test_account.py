"""Unit tests of module_utils/_account: the account read, the one compare (as_wanted for gateway_probe, what
gateway_account changes), the config directory's stat and its wanted value."""

import grp
import os
import pwd

from ansible_collections.gnss.pointperfect.plugins.module_utils import _account

ME = pwd.getpwuid(os.getuid())
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def test_account_as_wanted_and_each_difference():
    groups = [grp.getgrgid(g).gr_name for g in os.getgrouplist(ME.pw_name, ME.pw_gid) if g != ME.pw_gid]
    wanted = {"user": ME.pw_name, "group": MY_GROUP, "serial_group": None, "home": ME.pw_dir, "shell": ME.pw_shell}
    got = _account.account(wanted)
    assert got["as_wanted"] is True
    assert got["user"]["name"] == ME.pw_name and got["user"]["group"] == MY_GROUP
    assert got["user"]["groups"] == sorted(set(groups))
    assert got["group"] == {"name": MY_GROUP, "gid": os.getgid(), "members": list(grp.getgrgid(os.getgid()).gr_mem)}
    assert _account.account(dict(wanted, home="/nowhere"))["as_wanted"] is False
    assert _account.account(dict(wanted, shell="/usr/sbin/nologin-not"))["as_wanted"] is False
    assert _account.account(dict(wanted, group="no-such-group-pp"))["as_wanted"] is False
    assert _account.account(dict(wanted, serial_group="no-such-group-pp"))["as_wanted"] is False
    missing = _account.account(dict(wanted, user="no-such-user-pp"))
    assert missing["as_wanted"] is False and missing["user"] is None


def test_account_serial_group_membership(monkeypatch):
    wanted = {"user": ME.pw_name, "group": None, "serial_group": "dialout-pp", "home": None, "shell": None}

    def getgrnam(name, members=()):
        if name != "dialout-pp":
            raise KeyError(name)
        return grp.struct_group(("dialout-pp", "x", 4242, list(members)))

    monkeypatch.setattr(grp, "getgrnam", getgrnam)
    assert _account.account(wanted)["as_wanted"] is False  # the group exists, the user is not a member
    monkeypatch.setattr(grp, "getgrnam", lambda name: getgrnam(name, [ME.pw_name]))
    got = _account.account(wanted)
    assert got["as_wanted"] is True and got["serial_group"] == {
        "name": "dialout-pp",
        "gid": 4242,
        "members": [ME.pw_name],
    }


def test_stat_path_reports_type_mode_owner(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir(mode=0o750)
    os.chmod(folder, 0o750)
    (tmp_path / "f").write_text("x")
    os.chmod(tmp_path / "f", 0o640)
    (tmp_path / "l").symlink_to(folder)
    got = _account.stat_path(str(folder))
    me = pwd.getpwuid(os.getuid()).pw_name
    assert got == {"type": "directory", "mode": "0750", "owner": me, "group": grp.getgrgid(os.getgid()).gr_name}
    assert _account.stat_path(str(tmp_path / "f"))["type"] == "file"
    assert _account.stat_path(str(tmp_path / "f"))["mode"] == "0640"
    assert _account.stat_path(str(tmp_path / "l"))["type"] == "link"
    assert _account.stat_path(str(tmp_path / "missing")) is None


def test_stat_path_unnamed_ids_are_numbers(tmp_path, monkeypatch):
    def unknown(_id):
        raise KeyError(_id)

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    monkeypatch.setattr(grp, "getgrgid", unknown)
    got = _account.stat_path(str(tmp_path))
    assert (got["owner"], got["group"]) == (str(os.getuid()), str(os.getgid()))


def test_differences_name_each_part_in_the_order_the_tools_fix_them(monkeypatch):
    wanted = {"user": "pp", "group": "pp", "serial_group": "dialout", "home": "/opt/pp", "shell": "/usr/sbin/nologin"}
    nothing = {"user": None, "group": None, "serial_group": None}
    assert _account.differences(wanted, nothing) == ["serial_group", "group", "user"]
    user = {"name": "pp", "uid": 998, "gid": 100, "group": "users", "home": "/home/pp", "shell": "/bin/sh",
            "groups": ["video"]}  # fmt: skip
    found = {"user": user, "group": {"name": "pp", "gid": 997, "members": []},
             "serial_group": {"name": "dialout", "gid": 20, "members": ["other"]}}  # fmt: skip
    assert _account.differences(wanted, found) == ["primary_group", "serial_membership", "home", "shell"]
    right = dict(user, gid=997, group="pp", home="/opt/pp", shell="/usr/sbin/nologin")
    found = dict(found, user=right, serial_group={"name": "dialout", "gid": 20, "members": ["pp"]})
    assert _account.differences(wanted, found) == []
    unset = {"user": "pp", "group": None, "serial_group": None, "home": None, "shell": None}
    assert _account.differences(unset, dict(found, user=user)) == []  # what is not wanted is not compared


def test_account_is_read_and_compared_once(monkeypatch):
    wanted = {"user": ME.pw_name, "group": MY_GROUP, "serial_group": None, "home": ME.pw_dir, "shell": "/x"}
    got = _account.account(wanted)
    assert got == dict(_account.read_account(wanted), as_wanted=False)
    assert _account.differences(wanted, got) == ["shell"]


def test_directory_wanted_is_what_stat_path_reports(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    os.chmod(folder, _account.DIRECTORY_MODE)
    monkeypatch.setattr(_account, "DIRECTORY_OWNER", ME.pw_name)
    assert _account.stat_path(str(folder)) == _account.directory_wanted(MY_GROUP)
    assert _account.directory_wanted("pp") == {"type": "directory", "mode": "0750", "owner": ME.pw_name, "group": "pp"}


def test_output_dir_differs_when_wanted_and_not_a_directory(tmp_path):
    wanted = {"user": ME.pw_name, "group": MY_GROUP, "serial_group": None, "home": ME.pw_dir, "shell": ME.pw_shell}
    assert "output_dir" not in _account.read_account(wanted)  # not asked for: not read, not compared
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name, as_wanted in (("missing", False), ("f", False), ("dangling", False), ("l", True), (".", True)):
        got = _account.account(dict(wanted, output_dir=str(tmp_path / name)))
        assert got["as_wanted"] is as_wanted, name
        differs = _account.differences(dict(wanted, output_dir=str(tmp_path / name)), got)
        assert differs == ([] if as_wanted else ["output_dir"]), name
    got = _account.read_account(dict(wanted, output_dir=str(tmp_path / "l")))["output_dir"]
    assert got == _account.stat_path(str(tmp_path)) and got["type"] == "directory"  # the link is followed


def test_output_dir_comes_last_even_without_a_user():
    wanted = {"user": "pp", "group": "pp", "serial_group": None, "home": None, "shell": None, "output_dir": "/v/pp"}
    nothing = {"user": None, "group": None, "serial_group": None, "output_dir": None}
    assert _account.differences(wanted, nothing) == ["group", "user", "output_dir"]
    user = {"name": "pp", "uid": 9, "gid": 7, "group": "pp", "home": "/h", "shell": "/s", "groups": []}
    found = {"user": user, "group": {"name": "pp", "gid": 7, "members": []}, "serial_group": None,
             "output_dir": {"type": "file", "mode": "0644", "owner": "root", "group": "root"}}  # fmt: skip
    assert _account.differences(dict(wanted, home="/x"), found) == ["home", "output_dir"]
    found["output_dir"] = {"type": "directory", "mode": "0755", "owner": "root", "group": "root"}
    assert _account.differences(wanted, found) == []  # an existing directory as it is: its mode is not compared


def test_output_dir_wanted_mode():
    assert _account.directory_wanted("pp", _account.OUTPUT_DIR_MODE) == {
        "type": "directory",
        "mode": "0770",
        "owner": "root",
        "group": "pp",
    }
