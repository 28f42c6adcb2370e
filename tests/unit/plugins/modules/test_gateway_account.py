"""Unit tests of gateway_account against a fake account database (grp/pwd and the groupadd/useradd/usermod it
runs): what runs for each difference, idempotence, check mode, diff, kept memberships, one-line tool errors, the
config and output directories, agreement with gateway_probe's as_wanted, and the documentation in sync."""

import grp
import os
import pwd
import stat

import pytest
import yaml
from ansible_collections.gnss.pointperfect.plugins.module_utils import _account
from ansible_collections.gnss.pointperfect.plugins.modules import gateway_account as module

ME = pwd.getpwuid(os.getuid())
VALUED = {"--gid", "--groups", "--shell", "--home-dir", "--home", "--comment"}


class FakeSystem:
    """The account database grp/pwd read, changed by the tools as Debian's shadow utilities change it; also just
    what ensure() uses of AnsibleModule."""

    def __init__(self, groups=None, users=None, fail=None, missing=()):
        self.groups = dict(groups or {})  # name -> [gid, members]
        self.users = dict(users or {})  # name -> dict(uid, gid, home, shell, comment)
        self.users.setdefault(ME.pw_name, dict(uid=ME.pw_uid, gid=ME.pw_gid, home=ME.pw_dir, shell="", comment=""))
        self.fail = fail or {}  # tool -> (rc, stderr)
        self.missing = missing
        self.commands = []
        self._diff = True

    def install(self, monkeypatch):
        monkeypatch.setattr(grp, "getgrnam", self.getgrnam)
        monkeypatch.setattr(grp, "getgrgid", self.getgrgid)
        monkeypatch.setattr(pwd, "getpwnam", self.getpwnam)
        monkeypatch.setattr(os, "getgrouplist", self.getgrouplist)
        return self

    def getgrnam(self, name):
        if name not in self.groups:
            raise KeyError(name)
        gid, members = self.groups[name]
        return grp.struct_group((name, "x", gid, list(members)))

    def getgrgid(self, gid):
        return self.getgrnam(next((n for n, g in self.groups.items() if g[0] == gid), "-"))

    def getpwnam(self, name):
        if name not in self.users:
            raise KeyError(name)
        u = self.users[name]
        return pwd.struct_passwd((name, "x", u["uid"], u["gid"], u["comment"], u["home"], u["shell"]))

    def getgrouplist(self, name, gid):
        return [gid] + [g for g, members in self.groups.values() if name in members and g != gid]

    def get_bin_path(self, name):
        return None if name in self.missing else "/usr/sbin/" + name

    def run_command(self, argv):
        tool = os.path.basename(argv[0])
        self.commands.append([tool, *argv[1:]])
        if tool in self.fail:
            return self.fail[tool][0], "", self.fail[tool][1]
        opts, flags, rest = {}, set(), list(argv[1:])
        while len(rest) > 1:
            arg = rest.pop(0)
            if arg in VALUED:
                opts[arg] = rest.pop(0)
            else:
                flags.add(arg)
        name = rest[0]
        if tool == "groupadd":
            self.groups[name] = [5000 + len(self.groups), []]
        elif tool == "useradd":
            self.users[name] = dict(uid=900, gid=self.groups[opts["--gid"]][0], home=opts["--home-dir"],
                                    shell=opts["--shell"], comment=opts["--comment"])  # fmt: skip
            self.groups[opts["--groups"]][1].append(name)
        else:
            user = self.users[name]
            if "--groups" in opts:
                assert "--append" in flags, "usermod --groups without --append drops the other groups"
                self.groups[opts["--groups"]][1].append(name)
            user.update((key, opts[opt]) for opt, key in (("--home", "home"), ("--shell", "shell"),
                                                          ("--comment", "comment")) if opt in opts)  # fmt: skip
            if "--gid" in opts:
                user["gid"] = self.groups[opts["--gid"]][0]
        return 0, "", ""


def params(config_dir=None, **kw):
    base = dict(user="pp", group="pp", serial_group="dialout", home="/opt/pp", shell="/usr/sbin/nologin",
                comment="PointPerfect correction forwarder", config_dir=config_dir, output_dir=None)  # fmt: skip
    return dict(base, **kw)


@pytest.fixture
def owner(monkeypatch):
    """The config directory's owner is this test's user (root can chown to root, a plain user cannot)."""
    monkeypatch.setattr(_account, "DIRECTORY_OWNER", ME.pw_name)


def fresh(monkeypatch, **kw):
    """A gateway without the account: the service group will get this process's gid (so a plain user can chown)."""
    system = FakeSystem(**kw).install(monkeypatch)
    system.groups["-pp-gid-placeholder"] = [os.getgid(), []]  # reserved until groupadd pp takes it
    real_run = system.run_command

    def run_command(argv):
        rc = real_run(argv)
        if argv[1:] == ["--system", "pp"] and rc[0] == 0:
            system.groups["pp"][0] = system.groups.pop("-pp-gid-placeholder")[0]
        return rc

    system.run_command = run_command
    return system


def test_fresh_gateway_all_in_one_run_then_nothing(tmp_path, monkeypatch, owner):
    system = fresh(monkeypatch)
    conf = tmp_path / "etc" / "pp"
    got = module.ensure(system, params(str(conf)), False)
    assert got["changed"] is True
    assert got["created"] == ["serial_group", "group", "user", "config_dir"] and got["modified"] == []
    assert system.commands == got["commands"] == [
        ["groupadd", "--system", "dialout"],
        ["groupadd", "--system", "pp"],
        ["useradd", "--system", "--gid", "pp", "--groups", "dialout", "--shell", "/usr/sbin/nologin",
         "--home-dir", "/opt/pp", "--no-create-home", "--comment", "PointPerfect correction forwarder", "pp"],
    ]  # fmt: skip
    assert got["account"]["as_wanted"] is True and got["account"]["user"]["groups"] == ["dialout"]
    for made in (conf, conf.parent):  # missing parents get the same attributes, as ansible.builtin.file gives them
        assert stat.S_IMODE(os.lstat(made).st_mode) == 0o750 and os.lstat(made).st_gid == os.getgid()
    assert got["config_dir"] == {"type": "directory", "mode": "0750", "owner": ME.pw_name, "group": "pp"}
    system.commands.clear()
    again = module.ensure(system, params(str(conf)), False)
    assert again["changed"] is False and again["created"] == again["modified"] == again["commands"] == []
    assert system.commands == [] and again["diff"]["before"] == again["diff"]["after"]


def test_check_mode_on_a_fresh_gateway_changes_nothing_and_predicts(tmp_path, monkeypatch, owner):
    system = fresh(monkeypatch)
    conf = tmp_path / "pp"
    got = module.ensure(system, params(str(conf)), True)
    assert got["changed"] is True and got["created"] == ["serial_group", "group", "user", "config_dir"]
    assert [c[0] for c in got["commands"]] == ["groupadd", "groupadd", "useradd"]
    assert system.commands == [] and not conf.exists() and "pp" not in system.users
    before, after = got["diff"]["before"], got["diff"]["after"]
    assert before == {"serial_group": "absent", "group": "absent", "user": None, "config_dir": "absent"}
    assert after == {
        "serial_group": "present",
        "group": "present",
        "user": {"primary_group": "pp", "groups": ["dialout"], "home": "/opt/pp", "shell": "/usr/sbin/nologin",
                 "comment": "PointPerfect correction forwarder"},
        "config_dir": {"type": "directory", "mode": "0750", "owner": ME.pw_name, "group": "pp"},
    }  # fmt: skip
    assert got["account"]["as_wanted"] is False and got["config_dir"] is None


def test_existing_user_keeps_its_other_groups(monkeypatch):
    groups = {"pp": [997, []], "dialout": [20, []], "video": [44, ["pp"]], "users": [100, []]}
    users = {"pp": dict(uid=998, gid=100, home="/home/pp", shell="/bin/bash", comment="old")}
    system = FakeSystem(groups=groups, users=users).install(monkeypatch)
    got = module.ensure(system, params(), False)
    assert got["created"] == [] and got["modified"] == ["user"]
    assert system.commands == [["usermod", "--gid", "pp", "--append", "--groups", "dialout", "--home", "/opt/pp",
                                "--shell", "/usr/sbin/nologin", "--comment", "PointPerfect correction forwarder",
                                "pp"]]  # fmt: skip
    assert got["account"]["user"]["groups"] == ["dialout", "video"] and got["account"]["as_wanted"] is True
    assert got["diff"]["before"]["user"]["groups"] == ["video"]


def test_only_what_differs_runs_and_a_comment_alone_changes_nothing(monkeypatch):
    groups = {"pp": [997, []], "dialout": [20, ["pp"]]}
    users = {"pp": dict(uid=998, gid=997, home="/opt/pp", shell="/bin/sh", comment="PointPerfect correction forwarder")}
    system = FakeSystem(groups=groups, users=users).install(monkeypatch)
    assert module.ensure(system, params(), False)["commands"] == [["usermod", "--shell", "/usr/sbin/nologin", "pp"]]
    system.users["pp"]["comment"] = "someone else's words"
    assert module.ensure(system, params(), False)["changed"] is False  # gateway_probe's as_wanted ignores it too


def pp_user(gid=997):
    return {"pp": dict(uid=9, gid=gid, home="/opt/pp", shell="/usr/sbin/nologin", comment="")}


@pytest.mark.parametrize(
    "state",
    [
        dict(groups={}, users={}),
        dict(groups={"pp": [997, []]}, users={}),
        dict(groups={"pp": [997, []], "dialout": [20, []]}, users={}),
        dict(groups={"pp": [997, []], "dialout": [20, []]}, users=pp_user()),
        dict(groups={"pp": [997, []], "dialout": [20, ["pp"]]}, users=pp_user()),
        dict(groups={"pp": [997, []], "dialout": [20, ["pp"]]}, users=pp_user(gid=20)),
    ],
)
def test_changed_is_never_other_than_the_probes_as_wanted(monkeypatch, state):
    system = FakeSystem(**state).install(monkeypatch)
    wanted = params()
    probe_wanted = {key: wanted[key] for key in ("user", "group", "serial_group", "home", "shell")}
    assert module.ensure(system, wanted, True)["changed"] is not _account.account(probe_wanted)["as_wanted"]


@pytest.mark.parametrize(
    "fail, expected",
    [
        ({"groupadd": (10, "groupadd: cannot lock /etc/group; try again later.\n")},
         r"^groupadd failed \(exit 10\): groupadd: cannot lock /etc/group; try again later\.; check /etc/group"),
        ({"useradd": (4, "useradd: warning: x\nuseradd: UID 998 is not unique\n")},
         r"^useradd failed \(exit 4\): useradd: UID 998 is not unique; check /etc/passwd"),
    ],
)  # fmt: skip
def test_a_failing_tool_is_one_line_with_its_last_line_and_the_fix(monkeypatch, fail, expected):
    system = FakeSystem(groups={"dialout": [20, []]}, fail=fail).install(monkeypatch)
    with pytest.raises(module.AccountError, match=expected) as err:
        module.ensure(system, params(), False)
    assert "\n" not in str(err.value)


def test_usermod_on_a_busy_user_says_to_stop_it(monkeypatch):
    users = {"pp": dict(uid=998, gid=997, home="/srv/pp", shell="/usr/sbin/nologin", comment="")}
    fail = {"usermod": (8, "usermod: user pp is currently used by process 4242\n")}
    system = FakeSystem(groups={"pp": [997, []], "dialout": [20, ["pp"]]}, users=users, fail=fail)
    with pytest.raises(module.AccountError, match=r"process 4242; stop the user's processes \(systemctl stop"):
        module.ensure(system.install(monkeypatch), params(), False)


def test_a_missing_tool_names_the_package(monkeypatch):
    system = FakeSystem(groups={"pp": [997, []], "dialout": [20, []]}, missing=("useradd",)).install(monkeypatch)
    with pytest.raises(module.AccountError, match=r"^useradd is missing on the gateway; install passwd"):
        module.ensure(system, params(), False)


def test_config_dir_not_a_directory_fails_before_any_tool_runs(tmp_path, monkeypatch):
    system = FakeSystem().install(monkeypatch)
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path)
    for name, kind in (("f", "file"), ("l", "link")):
        with pytest.raises(module.AccountError, match=f"is a {kind}, not a directory; remove it"):
            module.ensure(system, params(str(tmp_path / name)), False)
    assert system.commands == []


def test_existing_directory_gets_its_attributes(tmp_path, monkeypatch, owner):
    groups = {"pp": [os.getgid(), []], "dialout": [20, ["pp"]]}
    users = {"pp": dict(uid=9, gid=os.getgid(), home="/opt/pp", shell="/usr/sbin/nologin", comment="")}
    system = FakeSystem(groups=groups, users=users).install(monkeypatch)
    conf = tmp_path / "pp"
    conf.mkdir()
    os.chmod(conf, 0o777)
    got = module.ensure(system, params(str(conf)), True)
    assert got["modified"] == ["config_dir"] and stat.S_IMODE(os.stat(conf).st_mode) == 0o777  # check mode
    got = module.ensure(system, params(str(conf)), False)
    assert got["modified"] == ["config_dir"] and got["commands"] == [] and system.commands == []
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o750
    assert module.ensure(system, params(str(conf)), False)["changed"] is False


def test_documentation_matches_argument_spec_and_result(tmp_path, monkeypatch, owner):
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert set(doc["options"]) == set(module.ARGUMENT_SPEC)
    for name, opt in module.ARGUMENT_SPEC.items():
        assert doc["options"][name]["type"] == opt["type"], name
        assert doc["options"][name].get("default") == opt.get("default"), name
    result = module.ensure(fresh(monkeypatch), params(str(tmp_path / "pp")), False)
    assert set(yaml.safe_load(module.RETURN)) == set(result) - {"changed", "diff"}


def test_no_permission_bit_before_the_owner_is_right(tmp_path, monkeypatch):
    seen = []
    real_lchown = os.lchown

    def lchown(path, uid, gid):
        seen.append((os.path.basename(path), stat.S_IMODE(os.lstat(path).st_mode)))
        real_lchown(path, uid, gid)

    monkeypatch.setattr(os, "lchown", lchown)
    module.make_directory(str(tmp_path / "a" / "b"), os.getuid(), os.getgid())
    old = tmp_path / "old"
    old.mkdir()
    os.chmod(old, 0o705)
    module.fix_directory(str(old), os.getuid(), os.getgid())
    assert [name for name, _ in seen] == ["a", "b", "old"]
    assert all(mode & 0o077 == 0 for name, mode in seen if name != "old")  # new: owner only until chown
    assert seen[-1][1] == 0o705 & 0o750  # existing: only bits taken away until chown
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in (tmp_path / "a", tmp_path / "a" / "b", old)] == [0o750] * 3


def in_place(monkeypatch):
    """A gateway whose account is as wanted (the service group is this process's gid)."""
    groups = {"pp": [os.getgid(), []], "dialout": [20, ["pp"]]}
    users = {"pp": dict(uid=9, gid=os.getgid(), home="/opt/pp", shell="/usr/sbin/nologin", comment="")}
    return FakeSystem(groups=groups, users=users).install(monkeypatch)


def test_output_dir_created_with_parents_0770_then_nothing(tmp_path, monkeypatch, owner):
    system = fresh(monkeypatch)
    out = tmp_path / "srv" / "gnss"
    got = module.ensure(system, params(str(tmp_path / "conf"), output_dir=str(out)), False)
    assert got["created"] == ["serial_group", "group", "user", "config_dir", "output_dir"] and got["modified"] == []
    assert [c[0] for c in got["commands"]] == ["groupadd", "groupadd", "useradd"]  # no tool for the directory
    modes = [(stat.S_IMODE(os.lstat(p).st_mode), os.lstat(p).st_uid, os.lstat(p).st_gid) for p in (out, out.parent)]
    assert modes == [(0o770, os.getuid(), os.getgid()), (0o750, os.getuid(), os.getgid())]
    wanted = {"type": "directory", "mode": "0770", "owner": ME.pw_name, "group": "pp"}
    assert got["account"]["output_dir"] == wanted and got["account"]["as_wanted"] is True
    assert got["diff"]["before"]["output_dir"] == "absent" and got["diff"]["after"]["output_dir"] == wanted
    system.commands.clear()
    again = module.ensure(system, params(str(tmp_path / "conf"), output_dir=str(out)), False)
    assert again["changed"] is False and again["created"] == [] and system.commands == []


def test_output_dir_check_mode_creates_nothing_and_predicts(tmp_path, monkeypatch, owner):
    system = in_place(monkeypatch)
    out = tmp_path / "a" / "out"
    got = module.ensure(system, params(output_dir=str(out)), True)
    assert got["changed"] is True and got["created"] == ["output_dir"] and got["commands"] == []
    assert not (tmp_path / "a").exists() and system.commands == []
    assert got["account"]["output_dir"] is None and got["account"]["as_wanted"] is False
    assert got["diff"]["before"]["output_dir"] == "absent"
    assert got["diff"]["after"]["output_dir"] == {"type": "directory", "mode": "0770", "owner": ME.pw_name,
                                                  "group": "pp"}  # fmt: skip
    assert "output_dir" not in module.ensure(system, params(), True)["diff"]["before"]  # not asked for: not shown


def test_existing_output_dir_or_a_link_to_one_is_left_as_it_is(tmp_path, monkeypatch):
    system = in_place(monkeypatch)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o705)
    (tmp_path / "link").symlink_to(shared)
    for path in (shared, tmp_path / "link"):
        for check_mode in (True, False):
            got = module.ensure(system, params(output_dir=str(path)), check_mode)
            assert got["changed"] is False and got["created"] == got["modified"] == [], path
            assert got["account"]["output_dir"]["mode"] == "0705" and got["account"]["as_wanted"] is True
    assert stat.S_IMODE(os.lstat(shared).st_mode) == 0o705 and os.path.islink(tmp_path / "link")
    assert system.commands == []


def test_output_dir_not_a_directory_fails_in_one_line_before_any_change(tmp_path, monkeypatch, owner):
    (tmp_path / "f").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name, kind in (("f", "file"), ("dangling", "link to nothing")):
        system = fresh(monkeypatch)
        for check_mode in (True, False):
            with pytest.raises(module.AccountError, match=f"/{name} is a {kind}, not a directory; remove it") as err:
                module.ensure(system, params(str(tmp_path / "conf"), output_dir=str(tmp_path / name)), check_mode)
            assert "\n" not in str(err.value)
        assert system.commands == [] and not (tmp_path / "conf").exists() and "pp" not in system.users


def test_output_dir_changed_is_never_other_than_the_probes_as_wanted(tmp_path, monkeypatch):
    system = in_place(monkeypatch)
    wanted = params(output_dir=str(tmp_path / "out"))
    probe_wanted = {key: wanted[key] for key in ("user", "group", "serial_group", "home", "shell", "output_dir")}
    for exists in (False, True):
        if exists:
            (tmp_path / "out").mkdir()
        as_wanted = _account.account(probe_wanted)["as_wanted"]
        assert as_wanted is exists and module.ensure(system, wanted, True)["changed"] is not as_wanted


def test_new_output_dir_has_no_permission_bit_before_the_owner_is_right(tmp_path, monkeypatch):
    seen = []
    real_lchown = os.lchown

    def lchown(path, uid, gid):
        seen.append(stat.S_IMODE(os.lstat(path).st_mode))
        real_lchown(path, uid, gid)

    monkeypatch.setattr(os, "lchown", lchown)
    module.make_directory(str(tmp_path / "a" / "b"), os.getuid(), os.getgid(), mode=_account.OUTPUT_DIR_MODE)
    assert len(seen) == 2 and all(mode & 0o077 == 0 for mode in seen)
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in (tmp_path / "a", tmp_path / "a" / "b")] == [0o750, 0o770]
