# Stdlib-only atomic file writing for the target side of gnss.pointperfect.ztp.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This module_utils is PRIVATE and should only be used by this collection.
# Breaking changes can occur any time, without notice.


import contextlib
import errno
import grp
import os
import pwd
import stat
import tempfile


class AtomicWriteError(Exception):
    """A file could not be prepared or committed; the message names the file and never holds its content."""


def resolve_uid(owner):
    """uid for a user name or numeric string, None to keep the default."""
    if owner is None or owner == "":
        return None
    owner = str(owner)
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise AtomicWriteError(
            "user %r does not exist on the target: create it or change the owner option" % owner
        ) from None


def resolve_gid(group):
    """gid for a group name or numeric string, None to keep the default."""
    if group is None or group == "":
        return None
    group = str(group)
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise AtomicWriteError(
            "group %r does not exist on the target: create it or change the group option" % group
        ) from None


def parse_mode(mode):
    """Octal mode from an int (YAML 0640) or an octal string ('0640', '640'); symbolic modes are not supported."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        value = mode
    else:
        text = str(mode).strip()
        if text.startswith("0o"):
            text = text[2:]
        try:
            value = int(text, 8)
        except ValueError:
            raise AtomicWriteError('mode %r is not an octal mode such as "0600"' % (mode,)) from None
    if value < 0 or value > 0o7777:
        raise AtomicWriteError("mode %r is out of range" % (mode,))
    return value


def describe_attributes(st):
    """Permission bits (octal string) and owner/group names of an os.stat result; numeric ids when unnamed."""
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"mode": "%04o" % stat.S_IMODE(st.st_mode), "owner": owner, "group": group}


def attributes_differ(path, mode, uid=None, gid=None):
    """True when the existing file's permission bits or owner/group differ from the wanted ones (always True for
    anything but a regular file: it gets replaced)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return True
    if stat.S_IMODE(st.st_mode) != mode:
        return True
    if uid is not None and st.st_uid != uid:
        return True
    return gid is not None and st.st_gid != gid


def is_regular(path):
    """True when path is a regular file itself (a symlink, fifo, socket, device or directory is not)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _open_regular(path, flags=os.O_RDONLY):
    """An fd of path when it is a regular file itself, None when it is missing or anything else (never followed)."""
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR):
            return None  # missing, a symlink (O_NOFOLLOW), a socket or a fifo without a writer
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_bytes(path, limit=None):
    """Content of a regular file, None when it does not exist or is not a regular file (a symlink, fifo or
    directory at a destination path is treated as missing: never read through, later replaced by the rename)."""
    fd = _open_regular(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read() if limit is None else f.read(limit)


def prepare(path, data, mode, uid=None, gid=None):
    """Write data to a temp file next to path with its final mode and owner, fsynced; return the temp path.

    The final file is not touched: commit() renames the temp file over it.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        # Restrict first (mkstemp gives 0600), then fill, then apply the final attributes before any rename.
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if uid is not None or gid is not None:
                os.fchown(f.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
    except Exception as e:
        discard(tmp)
        raise AtomicWriteError("cannot write a temporary file for %s: %s" % (path, _reason(e))) from None
    return tmp


def commit(tmp, path):
    """Atomically replace path with the prepared temp file, then fsync the directory."""
    try:
        os.rename(tmp, path)
    except OSError as e:
        discard(tmp)
        raise AtomicWriteError("cannot replace %s: %s" % (path, _reason(e))) from None
    fsync_dir(os.path.dirname(path) or ".")


def discard(tmp):
    """Remove a temp file, ignoring errors (used on the failure path)."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def fsync_dir(directory):
    """Make a rename durable; some filesystems refuse fsync on a directory, which is harmless."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, data, mode, uid=None, gid=None):
    """Replace path with data (final mode/owner applied before the rename). Returns True when something changed."""
    current = read_bytes(path)
    if current == data and not attributes_differ(path, mode, uid, gid):
        return False
    commit(prepare(path, data, mode, uid, gid), path)
    return True


def set_attributes(path, mode, uid=None, gid=None):
    """Fix mode/owner of an existing regular file in place. Returns True when something changed.

    The file is opened with O_NOFOLLOW and changed through its descriptor (fchmod/fchown), so a symlink, fifo or
    directory put at path is never changed through; such a path is an error here (callers replace it instead).
    """
    if not attributes_differ(path, mode, uid, gid):
        return False
    try:
        fd = _open_regular(path)
    except OSError as e:
        raise AtomicWriteError("cannot set mode/owner of %s: %s" % (path, _reason(e))) from None
    if fd is None:
        raise AtomicWriteError(
            "cannot set mode/owner of %s: not a regular file (it is replaced, never followed)" % path
        )
    try:
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        os.fchmod(fd, mode)
    except OSError as e:
        raise AtomicWriteError("cannot set mode/owner of %s: %s" % (path, _reason(e))) from None
    finally:
        os.close(fd)
    return True


def _reason(exc):
    """The OS reason of an exception, without any file content."""
    return getattr(exc, "strerror", None) or exc.__class__.__name__
