#!/usr/bin/python
# Target side of gnss.pointperfect.gateway_files (stdlib only): compares and atomically writes several small files
# in one round trip.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


DOCUMENTATION = r"""
---
module: gateway_files
short_description: Deploy several small files to a gateway in one round trip
version_added: 0.1.0
description:
  - Deploys a list of small text files (configuration, certificates bundles, systemd units) in B(one) module run on
    the target, instead of one M(ansible.builtin.template) or M(ansible.builtin.copy) task (about five SSH round
    trips each) per file.
  - Each file's content is given inline (O(files[].content)), read from a controller file (O(files[].src)) or
    rendered on the controller from a Jinja2 template with the task's variables (O(files[].template)), like
    M(ansible.builtin.template) does.
  - The target compares the SHA-256 of each file with the wanted content and checks its mode, owner and group; only
    the files that differ are written. A write is atomic; the content goes to a temporary file in the same
    directory, which gets its final mode, owner and group and is fsynced, optionally checked by
    O(files[].validate), and then renamed over the file.
  - Files are processed in list order, so a file that a later file's O(files[].validate) command needs
    (for example a CA bundle named by a configuration) should come first.
  - What a role decides on before it deploys (the gateway's account, build marker, preflight) is read by
    M(gnss.pointperfect.gateway_probe).
author:
  - gnss.pointperfect maintainers (@gnss-pointperfect)
requirements:
  - On the target, Python 3 standard library only.
extends_documentation_fragment:
  - gnss.pointperfect.attributes
  - gnss.pointperfect.attributes.files
options:
  files:
    description:
      - The files to deploy or remove.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Absolute path of the file on the target. Its directory must exist (outside check mode).
        type: path
        required: true
      state:
        description:
          - V(present) writes the file when its content or attributes differ, V(absent) removes it if it exists.
        type: str
        choices: [present, absent]
        default: present
      content:
        description:
          - The content of the file.
          - Exactly one of O(files[].content), O(files[].src) and O(files[].template) is needed when
            O(files[].state=present).
        type: str
      src:
        description:
          - A file on the controller whose content is deployed, searched like M(ansible.builtin.copy)'s C(src)
            (the role's C(files/) directory first, or an absolute path).
        type: path
      template:
        description:
          - A Jinja2 template on the controller, searched like M(ansible.builtin.template)'s C(src) (the role's
            C(templates/) directory first), rendered on the controller with the task's variables.
        type: path
      mode:
        description:
          - Octal permission bits of the file, as a string (V("0640")) or a YAML octal number.
        type: raw
        default: "0644"
      owner:
        description:
          - User name or uid that owns the file; unset keeps the writer's (or existing file's) owner.
        type: str
      group:
        description:
          - Group name or gid of the file; unset keeps the writer's (or existing file's) group.
        type: str
      validate:
        description:
          - Command that checks the candidate before it replaces the file, with C(%s) standing for the candidate's
            path, like M(ansible.builtin.template)'s C(validate). The command is split like a shell would, but not
            run by a shell.
          - The candidate already has its final mode, owner and group, and lives in the same directory as the file.
          - A non-zero exit fails the task and leaves the file untouched.
          - Not run in check mode.
        type: str
      secret:
        description:
          - Leave the file's content out of the diff (only its path and whether it changes are shown).
        type: bool
        default: false
notes:
  - The content travels in the module arguments, so use C(no_log) on the task for content that must not be logged,
    and set O(files[].secret=true) to keep it out of diffs.
seealso:
  - module: gnss.pointperfect.gateway_probe
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Deploy the CA bundle, the forwarder config and the unit in one round trip
  gnss.pointperfect.gateway_files:
    files:
      - path: /etc/pointperfect/ca.pem
        src: broker-ca.pem
        group: pointperfect
        mode: "0644"
      - path: /etc/pointperfect/forwarder.json
        template: forwarder.json.j2
        group: pointperfect
        mode: "0640"
        validate: /usr/bin/python3 -I -B /opt/pointperfect/forwarder --check-config --config %s
      - path: /etc/systemd/system/pointperfect-forwarder.service
        template: pointperfect-forwarder.service.j2
        mode: "0644"
  register: deployed
  notify: Restart pointperfect-forwarder

- name: Remove a file no longer wanted
  gnss.pointperfect.gateway_files:
    files:
      - path: /etc/pointperfect/ca.pem
        state: absent
"""

RETURN = r"""
files:
  description: One entry per O(files) item, in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file's path.
      type: str
      sample: /etc/pointperfect/forwarder.json
    changed:
      description: Whether the file was (or, in check mode, would be) written, re-attributed or removed.
      type: bool
      sample: true
    reason:
      description: Why it changed, V(created), V(content), V(attributes), V(removed), or V(none).
      type: str
      sample: content
  sample:
    - path: /etc/pointperfect/forwarder.json
      changed: true
      reason: content
changed_paths:
  description: The paths of the files that changed (or would change in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/pointperfect/forwarder.json]
"""

import hashlib  # noqa: E402 - Ansible modules import after DOCUMENTATION
import os  # noqa: E402
import shlex  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes, to_text  # noqa: E402
from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic  # noqa: E402

FILE_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    content=dict(type="str"),
    src=dict(type="path"),
    template=dict(type="path"),
    mode=dict(type="raw", default="0644"),
    owner=dict(type="str"),
    group=dict(type="str"),
    validate=dict(type="str"),
    secret=dict(type="bool", default=False),
)

ARGUMENT_SPEC = dict(
    files=dict(type="list", elements="dict", default=[], options=FILE_SPEC),
)


def sha256(data):
    """Hex SHA-256 of bytes, None for a missing file."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def validate_argv(command, candidate):
    """The validate command as argv with %s replaced by the candidate path."""
    if "%s" not in command:
        raise _atomic.AtomicWriteError("validate must contain %%s (the candidate file), got %r" % command)
    return [arg.replace("%s", candidate) for arg in shlex.split(command)]


def ids(spec, check_mode):
    """uid and gid of a file spec; in check mode an unknown user/group (not created yet) is reported, not fatal."""
    try:
        return _atomic.resolve_uid(spec.get("owner")), _atomic.resolve_gid(spec.get("group")), True
    except _atomic.AtomicWriteError:
        if check_mode:
            return None, None, False
        raise


def remove(path, check_mode):
    """Remove path if it exists; returns the reason."""
    if not os.path.lexists(path):
        return "none"
    if not check_mode:
        try:
            os.unlink(path)
        except OSError as e:
            raise _atomic.AtomicWriteError("cannot remove %s: %s" % (path, e.strerror)) from None
        _atomic.fsync_dir(os.path.dirname(path) or ".")
    return "removed"


def check_absolute(files):
    """Refuse relative paths before anything is written (they would land in the module's working directory)."""
    relative = [spec["path"] for spec in files if not os.path.isabs(spec["path"])]
    if relative:
        raise _atomic.AtomicWriteError("files[].path must be an absolute path, got %s" % ", ".join(relative))


def deploy(module, spec, check_mode):
    """Compare one file and write it when it differs. Returns (reason, before bytes, after bytes)."""
    path = spec["path"]
    if spec["state"] == "absent":
        before = _atomic.read_bytes(path)  # a symlink is removed, never read through
        return remove(path, check_mode), before, None
    if spec.get("content") is None:
        raise _atomic.AtomicWriteError(
            "%s: content is missing (src and template are resolved by the action plugin on the controller)" % path
        )
    data = to_bytes(spec["content"], errors="surrogate_or_strict")
    mode = _atomic.parse_mode(spec["mode"])
    uid, gid, known = ids(spec, check_mode)
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        if check_mode:
            return "created", None, data
        raise _atomic.AtomicWriteError("cannot write %s: directory %s does not exist" % (path, directory))
    current = _atomic.read_bytes(path)
    if current is None:
        reason = "created"
    elif sha256(current) != sha256(data):
        reason = "content"
    elif not known or _atomic.attributes_differ(path, mode, uid, gid):
        reason = "attributes"
    else:
        return "none", current, data
    if check_mode:
        return reason, current, data
    if reason == "attributes" and _atomic.is_regular(path):
        _atomic.set_attributes(path, mode, uid, gid)  # O_NOFOLLOW + fchmod: never through a link
        return reason, current, data
    tmp = _atomic.prepare(path, data, mode, uid, gid)
    if spec.get("validate"):
        run_validate(module, spec["validate"], tmp, path)
    _atomic.commit(tmp, path)
    return reason, current, data


def run_validate(module, command, tmp, path):
    """Run the validate command on the prepared temporary file; on failure discard it and fail (path untouched)."""
    try:
        argv = validate_argv(command, tmp)
    except (_atomic.AtomicWriteError, ValueError) as e:
        _atomic.discard(tmp)
        raise _atomic.AtomicWriteError("%s: bad validate command: %s" % (path, e)) from None
    rc, out, err = module.run_command(argv)
    if rc != 0:
        _atomic.discard(tmp)
        module.fail_json(
            msg="%s: validation failed, the file was not replaced (rc=%d): %s"
            % (path, rc, (err or out).strip()[-2000:]),
            rc=rc,
            stdout=out,
            stderr=err,
        )


def diff_entry(spec, reason, before, after):
    """A before/after diff for one changed file; secret files show only that they change."""
    path = spec["path"]
    if spec.get("secret"):
        before_text = "(secret content, %s)\n" % ("absent" if before is None else "present")
        after_text = "(secret content, %s)\n" % ("absent" if after is None else reason)
    else:
        before_text = "" if before is None else to_text(before, errors="surrogate_or_replace")
        after_text = "" if after is None else to_text(after, errors="surrogate_or_replace")
    return {"before_header": path, "after_header": path, "before": before_text, "after": after_text}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    check_mode = module.check_mode
    try:
        check_absolute(module.params["files"])
        results, diffs = [], []
        for spec in module.params["files"]:
            reason, before, after = deploy(module, spec, check_mode)
            changed = reason != "none"
            results.append({"path": spec["path"], "changed": changed, "reason": reason})
            if changed and module._diff:
                diffs.append(diff_entry(spec, reason, before, after))
    except _atomic.AtomicWriteError as e:
        module.fail_json(msg=str(e))
    changed_paths = [r["path"] for r in results if r["changed"]]
    result = dict(
        changed=bool(changed_paths),
        files=results,
        changed_paths=changed_paths,
    )
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
