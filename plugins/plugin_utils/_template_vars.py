# The template_* variables and ansible_managed that ansible.builtin.template gives a template, for the action
# plugins that render templates on the controller. Inlined here because ansible-core keeps its own function private
# from 2.19 (ansible._internal) and asks collections to inline it.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!


import datetime
import os
import pwd
import time

from ansible import constants as C

try:  # ansible-core >= 2.19: ansible_managed is itself a template (it names template_host...)
    from ansible.template import trust_as_template
except ImportError:  # older ansible-core renders templates from plain strings
    trust_as_template = None


def template_vars(path, fullpath, dest_path, include_ansible_managed=True):
    """template_host, template_path, template_mtime, template_uid, template_run_date, template_destpath,
    template_fullpath and (unless the caller has its own) ansible_managed, as ansible.builtin.template sets them."""
    st = os.stat(fullpath)
    try:
        uid = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        uid = st.st_uid
    result = dict(
        template_host=os.uname()[1],
        template_path=path,
        template_mtime=datetime.datetime.fromtimestamp(st.st_mtime),
        template_uid=uid,
        template_run_date=datetime.datetime.now(),
        template_destpath=dest_path,
        template_fullpath=fullpath,
    )
    if include_ansible_managed:
        managed = C.config.get_config_value("DEFAULT_MANAGED_STR")
        if trust_as_template is not None:
            # constant placeholders, rendered by the template engine (no template injection through the values)
            managed = managed.format(host="{{ template_host }}", uid="{{ template_uid }}", file="{{ template_path }}")
            managed = trust_as_template(time.strftime(managed, time.localtime(st.st_mtime)))
        else:
            managed = time.strftime(
                managed.format(host=result["template_host"], uid=uid, file=path), time.localtime(st.st_mtime)
            )
        result["ansible_managed"] = managed
    return result
