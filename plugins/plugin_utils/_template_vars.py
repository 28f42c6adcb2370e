# Rendering a template file on the controller as ansible.builtin.template does (with the template_* variables and
# ansible_managed), for gateway_files' action and the gateway_template lookup, so both render the same text. The
# variables are inlined here because ansible-core keeps its own function private from 2.19 (ansible._internal).
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
from ansible.module_utils.common.text.converters import to_text

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


def render(templar, loader, source, name, dest, variables):  # noqa: PLR0917 - the caller's six parts
    """The text of template file `source` (found as `name`) rendered for `dest` with `variables` plus the template_*
    variables: a shallow copy of the variables (ansible.builtin.template's lookup deep-copies them all per call)."""
    searchpath = [*list(variables.get("ansible_search_path", [])), loader._basedir, os.path.dirname(source)]
    searchpath = [p for base in searchpath for p in (os.path.join(base, "templates"), base)]
    extra = dict(variables)
    extra.update(template_vars(name, source, dest, include_ansible_managed="ansible_managed" not in extra))
    templar = templar.copy_with_new_env(searchpath=searchpath, available_variables=extra)
    text = loader.get_text_file_contents(source)
    if trust_as_template is not None:
        rendered = templar.template(trust_as_template(text), escape_backslashes=False)
    else:
        rendered = templar.template(to_text(text), preserve_trailing_newlines=True, escape_backslashes=False)
    return "" if rendered is None else to_text(rendered)
