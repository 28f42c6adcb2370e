"""The nspawn fleet: boots N Debian gateways under systemd-nspawn (sshd on 127.0.0.1, a pty as serial port) and
writes an Ansible inventory for them; used by pytest fixtures, the demo, and as a CLI (`up`/`down`/`status`/`build`)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

SUITE = "bookworm"  # the default suite; PP_ROOTFS_SUITE or Fleet(suite=/suites=) choose another (e.g. bullseye)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Bump when the bake step changes: each version has its own directory, so a rebuild never pulls the rootfs out
# from under gateways still running from the previous one.
ROOTFS_VERSION = 4
CACHE_DIR = Path("/var/cache/gnss-pointperfect")
DEFAULT_ROOTFS = CACHE_DIR / f"rootfs-{SUITE}-v{ROOTFS_VERSION}"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libnss-myhostname", "openssh-server", "python3", "python3-venv",
    "ca-certificates", "iproute2", "procps", "sudo",
)  # fmt: skip
# Units that are useless or fail in a container; masked so boot is quick and ends `running`.
MASKED_UNITS = (
    "getty.target", "console-getty.service", "container-getty@.service", "getty@.service",
    "serial-getty@.service", "getty-static.service",
    "systemd-machine-id-commit.service",  # /etc/machine-id is a read-only bind mount: commit always fails
    "systemd-timesyncd.service", "systemd-pstore.service", "e2scrub_reap.service", "e2scrub_all.timer",
    "fstrim.timer", "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
    "systemd-tmpfiles-clean.timer", "remote-fs.target",
)  # fmt: skip
STAMP = "etc/gnss-pointperfect-rootfs.json"
INOTIFY_KNOB = Path("/proc/sys/fs/inotify/max_user_instances")
# Inotify instances of root's per-user limit one gateway holds: 6 counted in /proc/*/fd of a booted bookworm
# gateway's cgroup (systemd, journald, logind, ...), plus one for the systemctl --wait of the readiness check. And a
# margin for whatever else root starts while the fleet boots.
INOTIFY_PER_GATEWAY = 7
INOTIFY_HEADROOM = 32
# the collection's app id (plugins/filter/app_specific_id.py): uuid5(NAMESPACE_DNS, "gnss.pointperfect")
APP_ID = "c9f4d130385c5b1ea446272ce2bc630f"
GUEST_SERIAL = "/dev/ttyACM0"
GUEST_SERIAL2 = "/dev/ttyACM1"  # a second serial device, e.g. a NEO-D9S L-band receiver
SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-gateway.conf"
CGROUP_ROOT = "gnss-pointperfect"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


class FleetError(RuntimeError):
    """A gateway did not build, boot or stop as expected (the message carries the evidence)."""


def _log(msg: str) -> None:
    print(f"[fleet] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- rootfs


def default_suite() -> str:
    """PP_ROOTFS_SUITE, else bookworm."""
    return os.environ.get("PP_ROOTFS_SUITE") or SUITE


def rootfs_path(suite: str | None = None) -> Path:
    """The cached rootfs of a suite: PP_ROOTFS_CACHE for the default suite, else rootfs-<suite>-v<N> beside it."""
    suite = suite or default_suite()
    cache = os.environ.get("PP_ROOTFS_CACHE")
    if cache and suite == default_suite():
        return Path(cache)
    return (Path(cache).parent if cache else CACHE_DIR) / f"rootfs-{suite}-v{ROOTFS_VERSION}"


def _suite_of(rootfs: Path) -> str:
    """The suite a rootfs path is for (rootfs-<suite>-v<N>), else the default suite."""
    m = re.fullmatch(r"rootfs-([a-z]+)-v\d+", rootfs.name)
    return m.group(1) if m else default_suite()


def inotify_instances(pids=None, uid: int = 0) -> int:
    """Inotify instances held right now by the processes `pids` (default: all) running as `uid` (default root): each
    is a file descriptor on anon_inode:inotify, charged to fs.inotify.max_user_instances of that user."""
    count = 0
    for pid in pids if pids is not None else (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
        with contextlib.suppress(OSError, ValueError, IndexError):
            status = Path(f"/proc/{pid}/status").read_text()
            if int(re.search(r"^Uid:\s+\d+\s+(\d+)", status, re.M).group(1)) != uid:
                continue
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    count += os.readlink(fd) == "anon_inode:inotify"
    return count


def ensure_inotify_instances(n: int) -> int:
    """Make room for n more gateways under root's fs.inotify.max_user_instances (shared with everything root runs,
    other fleets included): the limit must cover what is in use now plus INOTIFY_PER_GATEWAY for each new gateway
    plus INOTIFY_HEADROOM. Raises the limit when short; FleetError naming the sysctl when it cannot. Returns the
    limit."""
    in_use = inotify_instances()
    needed = in_use + n * INOTIFY_PER_GATEWAY + INOTIFY_HEADROOM
    try:
        current = int(INOTIFY_KNOB.read_text())
        if current >= needed:
            return current
        INOTIFY_KNOB.write_text(f"{needed}\n")
    except (OSError, ValueError) as e:
        raise FleetError(
            f"fs.inotify.max_user_instances is too low for {n} more gateways ({in_use} in use, {INOTIFY_PER_GATEWAY} "
            f"per gateway): cannot raise it ({e}); run `sysctl -w fs.inotify.max_user_instances={needed}` as root"
        ) from None
    _log(f"raised fs.inotify.max_user_instances {current} -> {needed} ({in_use} in use + {n} gateways)")
    return needed


def key_path(rootfs: Path | None = None) -> Path:
    """The root login key for every gateway: lives beside the rootfs, outside the repo."""
    rootfs = rootfs or rootfs_path()
    return rootfs.parent / f"{rootfs.name}.id_ed25519"


def debian_mirror(suite: str = SUITE) -> str:
    """PP_DEBIAN_MIRROR, else the Debian mirror this host's apt uses (deb822 or one-line), else deb.debian.org."""
    if os.environ.get("PP_DEBIAN_MIRROR"):
        return os.environ["PP_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for src in sources:
        try:
            text = src.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.findall(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.findall(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and suite in suites[0].split() and uris[0].rstrip("/").endswith("/debian"):
                return uris[0].rstrip("/")
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if m.group(2) == suite and m.group(1).rstrip("/").endswith("/debian"):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def _ensure_key(path: Path) -> str:
    pub = Path(f"{path}.pub")
    if not path.exists() or not pub.exists():
        for p in (path, pub):
            p.unlink(missing_ok=True)
        cmd = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gnss-pointperfect-fleet", "-f", str(path)]
        subprocess.run(cmd, check=True)
    return pub.read_text().strip()


def _expected_stamp(pubkey: str, suite: str = SUITE) -> dict:
    return {"version": ROOTFS_VERSION, "suite": suite, "packages": list(PACKAGES), "masked": list(MASKED_UNITS),
            "pubkey": pubkey}  # fmt: skip


def _read_stamp(rootfs: Path) -> dict | None:
    try:
        return json.loads((rootfs / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].replace("\\040", " ")
        if mnt.startswith(prefix) or mnt == prefix[:-1]:
            out.append(mnt)
    return sorted(out, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what a killed debootstrap left mounted (proc, sys) and never crosses a mount."""
    if not path.exists():
        return
    for mnt in _mounts_below(path):
        subprocess.run(["umount", "-l", mnt], check=False)
    if _mounts_below(path):
        raise FleetError(f"refusing to delete {path}: still has mounts {_mounts_below(path)}")
    shutil.rmtree(path)


def _bake(root: Path, pubkey: str) -> None:
    """Make a fresh debootstrap tree a gateway image: root key, sshd defaults, masks, no shared identities."""
    ssh = root / "root/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(pubkey + "\n")
    (ssh / "authorized_keys").chmod(0o600)
    # Host keys are per gateway (bound in at boot); never share the ones debootstrap generated.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d/00-harness.conf").write_text(
        "# gnss.pointperfect fleet harness defaults (the per-gateway drop-in 10-gateway.conf sets address/keys)\n"
        "UseDNS no\nPrintMotd no\nMaxStartups 64:30:128\n"
    )
    # sshd shares the host's network namespace: never start it without the harness drop-in (else it binds *:22).
    unit_d = root / "etc/systemd/system/ssh.service.d"
    unit_d.mkdir(parents=True, exist_ok=True)
    (unit_d / "harness.conf").write_text(f"[Unit]\nConditionPathExists={SSHD_DROPIN}\n")
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    journald = root / "etc/systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "harness.conf").write_text("[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n")
    # Each gateway's identity is its bound-in /etc/machine-id: dbus must not keep a copy shared by all gateways.
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
        dbus_id.symlink_to("/etc/machine-id")
    # nspawn --hostname must win: debootstrap copied the build host's /etc/hostname.
    (root / "etc/hostname").unlink(missing_ok=True)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (root / junk).glob("*"):
            if p.is_file() and p.name != "lock":
                p.unlink()


def ensure_rootfs(rootfs: Path | None = None, *, force: bool = False, suite: str | None = None) -> Path:
    """Build the shared read-only gateway image of a suite once (temp dir + rename, under a lock); return its path.
    The suite is `suite`, else the one in the path's name (rootfs-<suite>-v<N>), else the default."""
    rootfs = Path(rootfs or rootfs_path(suite)).absolute()
    suite = suite or _suite_of(rootfs)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with open(rootfs.parent / f"{rootfs.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run waits here, then finds the stamp current
        pubkey = _ensure_key(key_path(rootfs))
        expected = _expected_stamp(pubkey, suite)
        stamp = _read_stamp(rootfs)
        if not force and stamp and {k: stamp.get(k) for k in expected} == expected:
            return rootfs
        for stale in rootfs.parent.glob(f".{rootfs.name}.*"):  # leftovers of a killed build
            _remove_tree(stale)
        tmp = rootfs.parent / f".{rootfs.name}.build-{os.getpid()}"
        mirror = debian_mirror(suite)
        _log(f"building {rootfs} ({suite} minbase from {mirror}); reason: {'forced' if force else 'missing/outdated'}")
        t0 = time.monotonic()
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(tmp), mirror]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            _remove_tree(tmp)
            raise FleetError(f"debootstrap failed ({proc.returncode}):\n{tail}")
        _bake(tmp, pubkey)
        built = dict(expected, mirror=mirror, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     build_seconds=round(time.monotonic() - t0, 1))  # fmt: skip
        (tmp / STAMP).write_text(json.dumps(built, indent=2) + "\n")
        old = rootfs.parent / f".{rootfs.name}.old-{os.getpid()}"
        if rootfs.exists():
            rootfs.rename(old)
        tmp.rename(rootfs)
        _remove_tree(old)
        _log(f"rootfs ready in {built['build_seconds']}s")
        return rootfs


# ---------------------------------------------------------------- cgroups


def _cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy mounted on the host (v1 controllers, name=systemd, unified)."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _src, mnt, fstype, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            out.append(Path(mnt))
    return out


def _cgroup_pids(dirs: list[str]) -> set[int]:
    pids: set[int] = set()
    for d in dirs:
        for procs in Path(d).rglob("cgroup.procs") if Path(d).is_dir() else ():
            with contextlib.suppress(OSError):
                pids.update(int(x) for x in procs.read_text().split())
    return pids


def _remove_cgroups(dirs: list[str]) -> None:
    for d in dirs:
        if not Path(d).is_dir():
            continue
        for sub in sorted((p for p in Path(d).rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            Path(d).rmdir()


# ---------------------------------------------------------------- gateways


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass
class Gateway:
    """One booted gateway; everything needed to reach it or tear it down is here (and in fleet.json)."""

    name: str
    ssh_port: int
    metrics_port: int
    machine_id: str
    dir: str
    private_key: str
    serial_device: str | None = None  # host path (pty slave) bound to GUEST_SERIAL
    guest_serial_device: str = GUEST_SERIAL
    serial_device2: str | None = None  # a second host pty (e.g. the D9S) bound to GUEST_SERIAL2
    guest_serial_device2: str = GUEST_SERIAL2
    machine: str = ""  # nspawn machine name: NAME-FLEETID, so concurrent fleets never share nspawn's /run paths
    pid: int | None = None  # the systemd-nspawn process
    cgroups: list[str] = field(default_factory=list)
    state: str | None = None  # `systemctl is-system-running` after boot
    suite: str = SUITE  # the Debian suite it boots (its rootfs)
    rootfs: str = ""  # the read-only lower layer it boots from

    @property
    def hardware_id(self) -> str:
        """The id the role derives with pointperfect_hardware_id_source machine_id: pp- + the app-specific hash of
        the machine id (systemd's sd_id128_get_machine_app_specific with the collection's app id), computed here
        independently of the app_specific_id filter."""
        mac = hmac.new(bytes.fromhex(self.machine_id), bytes.fromhex(APP_ID), hashlib.sha256)
        digest = bytearray(mac.digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x40
        digest[8] = (digest[8] & 0x3F) | 0x80
        return "pp-" + digest.hex()

    @property
    def log(self) -> Path:
        return Path(self.dir) / "nspawn.log"

    def ssh_argv(self, *command: str) -> list[str]:
        return ["ssh", "-i", self.private_key, "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5", "root@127.0.0.1", *command]  # fmt: skip

    def run(self, command: str, *, check: bool = True, timeout: float = 60, input: bytes | str | None = None,
            text: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
        """Run a shell command inside the gateway over ssh."""
        proc = subprocess.run(self.ssh_argv(command), capture_output=True, timeout=timeout, input=input, text=text,
                              check=False)  # fmt: skip
        if check and proc.returncode != 0:
            raise FleetError(f"{self.name}: `{command}` exited {proc.returncode}: {proc.stderr or proc.stdout}")
        return proc

    def memory_bytes(self) -> int | None:
        """Memory charged to the gateway's cgroup (v1 memory.usage_in_bytes or v2 memory.current)."""
        for d in self.cgroups:
            for f in ("memory.usage_in_bytes", "memory.current"):
                with contextlib.suppress(OSError, ValueError):
                    return int((Path(d) / f).read_text())
        return None

    def inotify_instances(self) -> int:
        """Inotify instances root's processes of this gateway hold (what INOTIFY_PER_GATEWAY budgets)."""
        return inotify_instances(_cgroup_pids(self.cgroups))

    def pss_bytes(self) -> int:
        """Proportional set size of every process of the gateway (shared rootfs pages split between gateways)."""
        total = 0
        for pid in _cgroup_pids(self.cgroups):
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        return total

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = _ANSI.sub("", self.log.read_text(errors="replace"))
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Fleet:
    """N gateways booted from the cached rootfs; a context manager (`with Fleet(3, tmp) as fleet:`)."""

    def __init__(self, n: int, workdir: str | os.PathLike, *, serial_devices: list[str | None] | None = None,
                 prefix: str = "gw", rootfs: str | os.PathLike | None = None, boot_timeout: float = 180,
                 stop_timeout: float = 30, serial_group: str | None = "dialout", allow_degraded: bool | None = None,
                 extra_nspawn_args: tuple[str, ...] = (),
                 serial_devices2: list[str | None] | None = None, suite: str | None = None,
                 suites: list[str | None] | None = None) -> None:  # fmt: skip
        for name, devices in (("serial_devices", serial_devices), ("serial_devices2", serial_devices2),
                              ("suites", suites)):  # fmt: skip
            if devices is not None and len(devices) != n:
                raise ValueError(f"{name} has {len(devices)} entries for {n} gateways")
        self.n = n
        self.workdir = Path(workdir).absolute()
        self.serial_devices = list(serial_devices) if serial_devices is not None else [None] * n
        self.serial_devices2 = list(serial_devices2) if serial_devices2 is not None else [None] * n
        self.prefix = prefix
        # one suite for all (suite, PP_ROOTFS_SUITE, bookworm) or one per gateway (suites[i], None = that default)
        self.suite = suite or (_suite_of(Path(rootfs)) if rootfs else default_suite())
        self.rootfs = Path(rootfs).absolute() if rootfs else rootfs_path(self.suite).absolute()
        self.suites = [s or self.suite for s in suites] if suites is not None else [self.suite] * n
        if rootfs and set(self.suites) != {self.suite}:
            raise ValueError("rootfs= boots every gateway from one image: use suites= without rootfs=")
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.serial_group = serial_group
        self.allow_degraded = (os.environ.get("PP_FLEET_ALLOW_DEGRADED") == "1") if allow_degraded is None \
            else allow_degraded  # fmt: skip
        self.extra_nspawn_args = tuple(extra_nspawn_args)
        self.fleet_id = secrets.token_hex(4)
        self.gateways: list[Gateway] = []
        self.boot_seconds: float | None = None
        self._procs: dict[str, subprocess.Popen] = {}

    # paths
    @property
    def state_path(self) -> Path:
        return self.workdir / "fleet.json"

    @property
    def inventory_path(self) -> Path:
        return self.workdir / "inventory.ini"

    @property
    def ansible_cfg_path(self) -> Path:
        return self.workdir / "ansible.cfg"

    @property
    def private_key(self) -> Path:
        return key_path(self.rootfs)

    def ansible_env(self, base: dict | None = None) -> dict:
        """An environment for ansible/ansible-playbook subprocesses that uses this fleet's ansible.cfg."""
        env = dict(os.environ if base is None else base)
        env["ANSIBLE_CONFIG"] = str(self.ansible_cfg_path)
        return env

    def __enter__(self) -> Fleet:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    # lifecycle
    def up(self) -> Fleet:
        """Build the rootfs if needed, boot all gateways in parallel, wait until each is reachable and running."""
        for tool in ("systemd-nspawn", "debootstrap", "ssh", "ssh-keygen"):
            if not shutil.which(tool):
                raise FleetError(f"{tool} not found (apt-get install systemd-container debootstrap openssh-client)")
        if os.geteuid() != 0:
            raise FleetError("the fleet harness needs root (systemd-nspawn)")
        images = {s: (self.rootfs if s == self.suite else rootfs_path(s).absolute()) for s in self.suites}
        for s, image in images.items():
            ensure_rootfs(image, suite=s)
        ensure_inotify_instances(self.n)
        if self.state_path.exists():
            prev = json.loads(self.state_path.read_text())
            if any(g.get("pid") and _alive(g["pid"]) for g in prev.get("gateways", [])):
                raise FleetError(f"a fleet is already running from {self.workdir} (run `down` first)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(2 * self.n)
        self.gateways = []
        for i in range(self.n):
            name = f"{self.prefix}-{i + 1:02d}"
            gw_dir = self.workdir / name
            gw_dir.mkdir(exist_ok=True)
            serial, serial2 = self.serial_devices[i], self.serial_devices2[i]
            self.gateways.append(Gateway(
                name=name, machine=f"{name}-{self.fleet_id}", ssh_port=ports[2 * i], metrics_port=ports[2 * i + 1],
                machine_id=uuid.uuid4().hex, suite=self.suites[i], rootfs=str(images[self.suites[i]]),
                dir=str(gw_dir), private_key=str(key_path(images[self.suites[i]])),
                serial_device=os.path.realpath(serial) if serial else None,
                serial_device2=os.path.realpath(serial2) if serial2 else None,
            ))  # fmt: skip
        t0 = time.monotonic()
        try:
            for gw in self.gateways:
                self._prepare(gw)
                self._spawn(gw)
            self._write_state()  # early, so a crashed `up` can still be torn down with `down --dir`
            errors: list[str] = []
            threads = [threading.Thread(target=self._wait_ready, args=(gw, errors)) for gw in self.gateways]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise FleetError("\n\n".join(errors))
        except BaseException:
            self.down()
            raise
        self.boot_seconds = round(time.monotonic() - t0, 2)
        self._write_state()
        self._write_inventory()
        return self

    def _prepare(self, gw: Gateway) -> None:
        d = Path(gw.dir)
        (d / "machine-id").write_text(gw.machine_id + "\n")
        hostkey = d / "ssh_host_ed25519_key"
        if not hostkey.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", gw.name, "-f", str(hostkey)],
                           check=True)  # fmt: skip
        (d / "sshd.conf").write_text(
            f"# {gw.name}: written by pointperfect_sim/fleet.py\n"
            f"ListenAddress 127.0.0.1:{gw.ssh_port}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        )
        for device in (gw.serial_device, gw.serial_device2):
            if not device:
                continue
            st = os.stat(device)
            if not (st.st_mode & 0o170000) == 0o020000:
                raise FleetError(f"{gw.name}: serial device {device} is not a character device")
            if self.serial_group:  # the forwarder's service user reaches the port through this group
                os.chown(device, -1, grp.getgrnam(self.serial_group).gr_gid)
                os.chmod(device, 0o660)

    def _nspawn_argv(self, gw: Gateway) -> list[str]:
        d = Path(gw.dir)
        argv = [
            "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--volatile=overlay",
            f"--directory={gw.rootfs or self.rootfs}", f"--machine={gw.machine}", f"--hostname={gw.name}",
            f"--uuid={uuid.UUID(gw.machine_id)}", "--link-journal=no", "--console=read-only",
            f"--bind-ro={d / 'machine-id'}:/etc/machine-id",
            f"--bind-ro={d / 'sshd.conf'}:{SSHD_DROPIN}",
            f"--bind-ro={d / 'ssh_host_ed25519_key'}:/etc/ssh/ssh_host_ed25519_key",
            f"--bind-ro={d / 'ssh_host_ed25519_key.pub'}:/etc/ssh/ssh_host_ed25519_key.pub",
        ]  # fmt: skip
        if gw.serial_device:
            argv.append(f"--bind={gw.serial_device}:{gw.guest_serial_device}")
        if gw.serial_device2:
            argv.append(f"--bind={gw.serial_device2}:{gw.guest_serial_device2}")
        return argv + list(self.extra_nspawn_args)

    def _spawn(self, gw: Gateway) -> None:
        # Each gateway gets its own cgroup in every hierarchy (there is no systemd on the host to give it a scope):
        # the container's systemd owns a subtree, memory is measurable, and leftovers are findable at `down`.
        gw.cgroups = []
        for mnt in _cgroup_mounts():
            cg = mnt / CGROUP_ROOT / f"{self.fleet_id}-{gw.name}"
            try:
                cg.mkdir(parents=True, exist_ok=True)
                for level in (cg.parent, cg):  # a new v1 cpuset is empty: no task may join until it is filled
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        if (level / knob).exists() and not (level / knob).read_text().strip():
                            (level / knob).write_text((level.parent / knob).read_text())
            except OSError:
                continue
            gw.cgroups.append(str(cg))
        # A tiny sh joins the cgroups, then execs nspawn: nothing forks before the move.
        script = 'for f in $CG; do echo $$ > "$f/cgroup.procs" || exit 97; done; exec "$@"'
        env = dict(os.environ, CG=" ".join(gw.cgroups), SYSTEMD_COLORS="0", TERM="dumb")
        env.pop("NOTIFY_SOCKET", None)
        with open(gw.log, "wb") as log:
            proc = subprocess.Popen(["sh", "-c", script, "sh", *self._nspawn_argv(gw)], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
        self._procs[gw.name] = proc
        gw.pid = proc.pid

    def _wait_ready(self, gw: Gateway, errors: list[str]) -> None:
        deadline = time.monotonic() + self.boot_timeout
        last = ""
        while time.monotonic() < deadline:
            if gw.pid is None or not _alive(gw.pid):
                errors.append(f"{gw.name}: systemd-nspawn exited during boot; log tail:\n{gw.log_tail()}")
                return
            try:
                left = max(5.0, deadline - time.monotonic())
                proc = gw.run("systemctl is-system-running --wait", check=False, timeout=left)
            except subprocess.TimeoutExpired:
                break
            if proc.returncode == 255:  # ssh could not connect yet
                last = proc.stderr.strip()
                time.sleep(0.3)
                continue
            gw.state = proc.stdout.strip()
            if gw.state == "running" or (gw.state == "degraded" and self.allow_degraded):
                return
            failed = gw.run("systemctl --failed --no-legend --plain", check=False).stdout.strip()
            errors.append(f"{gw.name}: system is {gw.state!r}; failed units:\n{failed}\nlog tail:\n{gw.log_tail()}")
            return
        errors.append(f"{gw.name}: not ready within {self.boot_timeout}s (ssh: {last or 'connected'}); "
                      f"log tail:\n{gw.log_tail()}")  # fmt: skip

    def down(self) -> None:
        """Halt every gateway (SIGTERM to nspawn = clean poweroff), SIGKILL stragglers, remove cgroups. Idempotent."""
        _stop_gateways(self.gateways, self.stop_timeout, self._procs)
        self._procs.clear()
        for gw in self.gateways:
            gw.pid = None
        if self.state_path.exists():
            self._write_state(running=False)

    # outputs
    def _write_state(self, *, running: bool = True) -> None:
        state = {
            "format": 1, "fleet_id": self.fleet_id, "running": running, "workdir": str(self.workdir),
            "rootfs": str(self.rootfs), "private_key": str(self.private_key),
            "inventory": str(self.inventory_path), "ansible_cfg": str(self.ansible_cfg_path),
            "boot_seconds": self.boot_seconds, "gateways": [asdict(gw) for gw in self.gateways],
        }  # fmt: skip
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

    def _write_inventory(self) -> None:
        common = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
        lines = ["# Generated by pointperfect_sim/fleet.py", "[pointperfect_gateways]"]
        for gw in self.gateways:
            lines.append(
                f"{gw.name} ansible_host=127.0.0.1 ansible_port={gw.ssh_port} ansible_user=root "
                f"ansible_ssh_private_key_file={gw.private_key} ansible_ssh_common_args='{common}' "
                f"ansible_python_interpreter=/usr/bin/python3 pointperfect_metrics_port={gw.metrics_port} "
                f"pointperfect_serial_device={gw.guest_serial_device}"
            )
        self.inventory_path.write_text("\n".join(lines) + "\n")
        self.ansible_cfg_path.write_text(
            "# Generated by pointperfect_sim/fleet.py: use with ANSIBLE_CONFIG=<this file>\n"
            f"[defaults]\ninventory = {self.inventory_path}\nhost_key_checking = False\nretry_files_enabled = False\n"
            f"forks = {max(5, self.n)}\ninterpreter_python = /usr/bin/python3\n\n"
            "[ssh_connection]\npipelining = True\n"
        )


def _kill_leftovers(gw: Gateway) -> None:
    """Whatever is still in a gateway's cgroups is a leftover of that gateway: kill it, then remove the cgroups."""
    for _ in range(50):
        pids = {p for p in _cgroup_pids(gw.cgroups) if _alive(p)}
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    left = {p for p in _cgroup_pids(gw.cgroups) if _alive(p)}
    if left:
        raise FleetError(f"{gw.name}: processes left after stop: {sorted(left)}")
    _remove_cgroups(gw.cgroups)


def _stop_gateways(gateways: list[Gateway], timeout: float, procs: dict | None = None) -> None:
    procs = procs or {}

    def ours(gw: Gateway) -> bool:  # never signal a recycled PID
        try:
            cmd = Path(f"/proc/{gw.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return _alive(gw.pid) and f"--machine={gw.machine}".encode() in cmd

    live = [gw for gw in gateways if gw.pid and ours(gw)]
    for gw in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(gw.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(gw.pid) for gw in live):
        for gw in live:  # reap our own children so they do not linger as zombies
            if gw.name in procs:
                procs[gw.name].poll()
        time.sleep(0.2)
    for gw in live:
        if _alive(gw.pid):
            _log(f"{gw.name}: no clean halt within {timeout}s, SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(gw.pid, signal.SIGKILL)
    for gw in gateways:
        if gw.name in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                procs[gw.name].wait(timeout=10)
    for gw in gateways:
        _kill_leftovers(gw)
    for mnt in _cgroup_mounts():
        with contextlib.suppress(OSError):
            (mnt / CGROUP_ROOT).rmdir()  # only succeeds when no other fleet is running


def down(workdir: str | os.PathLike, timeout: float = 30) -> int:
    """Stop the fleet recorded in WORKDIR/fleet.json (from another process, e.g. the CLI); returns gateways stopped."""
    state_path = Path(workdir) / "fleet.json"
    if not state_path.exists():
        return 0
    state = json.loads(state_path.read_text())
    known = {f.name for f in Gateway.__dataclass_fields__.values()}
    gateways = [Gateway(**{k: v for k, v in g.items() if k in known}) for g in state["gateways"]]
    live = sum(1 for gw in gateways if gw.pid and _alive(gw.pid))
    _stop_gateways(gateways, timeout)
    for g in state["gateways"]:
        g["pid"] = None
    state["running"] = False
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    return live


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pointperfect_sim.fleet", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="boot N gateways, write DIR/inventory.ini, DIR/ansible.cfg, DIR/fleet.json")
    up.add_argument("-n", type=int, default=3)
    up.add_argument("--dir", required=True)
    up.add_argument("--prefix", default="gw")
    up.add_argument("--serial-device", action="append", default=None,
                    help="host pty slave for gateway i (repeat once per gateway)")  # fmt: skip
    up.add_argument("--serial-device2", action="append", default=None,
                    help="second host pty for gateway i (/dev/ttyACM1), '-' for none; once per gateway")  # fmt: skip
    up.add_argument("--boot-timeout", type=float, default=180)
    up.add_argument("--suite", action="append", default=None,
                    help="Debian suite (bookworm, bullseye): once for all gateways, or once per gateway")  # fmt: skip
    dn = sub.add_parser("down", help="halt the fleet recorded in DIR/fleet.json (idempotent)")
    dn.add_argument("--dir", required=True)
    st = sub.add_parser("status", help="state and memory of each gateway")
    st.add_argument("--dir", required=True)
    bd = sub.add_parser("build", help="build (or check) the cached rootfs")
    bd.add_argument("--force", action="store_true")
    bd.add_argument("--suite", default=None, help="Debian suite (default PP_ROOTFS_SUITE, else bookworm)")
    args = ap.parse_args(argv)

    if args.cmd == "build":
        t0 = time.monotonic()
        path = ensure_rootfs(force=args.force, suite=args.suite)
        print(f"{path} ({time.monotonic() - t0:.1f}s)")
    elif args.cmd == "up":
        second = [None if d in ("", "-") else d for d in args.serial_device2] if args.serial_device2 else None
        suites = args.suite or []
        fleet = Fleet(args.n, args.dir, serial_devices=args.serial_device, prefix=args.prefix,
                      boot_timeout=args.boot_timeout, serial_devices2=second,
                      suite=suites[0] if len(suites) == 1 else None,
                      suites=suites if len(suites) > 1 else None)  # fmt: skip
        fleet.up()
        for gw in fleet.gateways:
            print(f"{gw.name}\tssh -p {gw.ssh_port}\tmetrics {gw.metrics_port}\tpid {gw.pid}\t{gw.state}")
        print(f"booted {args.n} in {fleet.boot_seconds}s; inventory {fleet.inventory_path}; "
              f"ANSIBLE_CONFIG={fleet.ansible_cfg_path}")  # fmt: skip
    elif args.cmd == "down":
        print(f"stopped {down(args.dir)} gateway(s)")
    else:
        state_path = Path(args.dir) / "fleet.json"
        if not state_path.exists():
            print("no fleet")
            return 1
        state = json.loads(state_path.read_text())
        known = {f.name for f in Gateway.__dataclass_fields__.values()}
        for g in state["gateways"]:
            gw = Gateway(**{k: v for k, v in g.items() if k in known})
            alive = bool(gw.pid and _alive(gw.pid))
            sysstate = gw.run("systemctl is-system-running", check=False).stdout.strip() if alive else "down"
            mem = gw.memory_bytes()
            print(f"{gw.name}\tpid {gw.pid}\t{sysstate}" + (f"\tmem {mem / 2**20:.1f} MiB" if mem else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FleetError as e:
        print(f"fleet: {e}", file=sys.stderr)
        sys.exit(1)
