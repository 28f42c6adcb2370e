# Rendering a template file on the controller as ansible.builtin.template does (with the template_* variables and
# ansible_managed), for gateway_files' action and the gateway_template lookup, so both render the same text; and the
# lookup's reuse of a text rendered before for the same values. The variables are inlined here because ansible-core
# keeps its own function private from 2.19 (ansible._internal).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!


import datetime
import hashlib
import json
import os
import pwd
import time
from collections import OrderedDict

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_text
from jinja2 import Environment, nodes

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


class Reuse:
    """Texts rendered before in this process, by template and by the values of every variable the template names. A
    template that depends on nothing else renders the same text for the same values; one that names a lookup, now(),
    a random filter or template_run_date, or includes another template, is never reused (key() is None)."""

    UNSAFE_NAMES = frozenset(("lookup", "query", "q", "now", "lipsum", "template_run_date"))
    UNSAFE_FILTERS = frozenset(("random", "shuffle", "password_hash"))
    KEEP = 256

    def __init__(self):
        self._names = {}
        self._texts = OrderedDict()

    def names(self, text):
        """The variables a template text names (not those it sets), or None when its text must not be reused."""
        if text not in self._names:
            try:  # Jinja's default syntax (a "#jinja2:" header may change it: not reused)
                tree = None if text.startswith("#jinja2:") else Environment().parse(text)  # noqa: S701 - parsed only
            except Exception:  # an Ansible-only syntax: render it every time
                tree = None
            # every name read (a superset of the undeclared ones: a name the template sets itself only narrows reuse),
            # and the variables it reads with the vars lookup (their names as constants)
            found = None
            if tree is not None:
                names = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
                looked_up = [self._vars_lookup(call) for call in tree.find_all(nodes.Call)]
                if all(v is not None for v in looked_up):  # only vars lookups: "lookup" itself is no variable
                    names.discard("lookup")
                found = sorted(names.union(*[v or () for v in looked_up]))
            if found is not None and (
                self.UNSAFE_NAMES.intersection(found)
                or any(f.name in self.UNSAFE_FILTERS for f in tree.find_all(nodes.Filter))
                or next(tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)), None) is not None
            ):
                found = None
            self._names[text] = found
        return self._names[text]

    @staticmethod
    def _vars_lookup(call):
        """The variable names a call reads when it is lookup('ansible.builtin.vars', 'name', ...) with constant
        names; () for a call that is no lookup; None for any other lookup."""
        if not (isinstance(call.node, nodes.Name) and call.node.name == "lookup"):
            return ()
        args = call.args
        if (
            call.kwargs
            or call.dyn_args
            or call.dyn_kwargs
            or len(args) < 2
            or not all(isinstance(a, nodes.Const) and isinstance(a.value, str) for a in args)
        ):
            return None
        return [a.value for a in args[1:]] if args[0].value in ("ansible.builtin.vars", "vars") else None

    def keyed(self, text, where, variables, template):
        """(digest, values): a digest of the text, where it goes and the templated value of each variable it names,
        and those values by name (the render takes them instead of templating each variable again at each use);
        (None, None) when it must be rendered as it is (unsafe, or a value that does not template: the render
        reports that)."""
        names = self.names(text)
        if names is None:
            return None, None
        try:
            values = {name: template(variables[name]) for name in names if name in variables}
            named = [[name, values.get(name, "<unset>")] for name in names]
            blob = json.dumps([text, where, named], sort_keys=True, default=repr)
        except Exception:  # let the render fail with Ansible's own message
            return None, None
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest(), values

    def get(self, key):
        return self._texts.get(key)

    def keep(self, key, rendered):
        self._texts[key] = rendered
        while len(self._texts) > self.KEEP:
            self._texts.popitem(last=False)


def render(templar, loader, source, name, dest, variables, reuse=None):  # noqa: PLR0917 - the caller's parts
    """The text of template file `source` (found as `name`) rendered for `dest` with `variables` plus the template_*
    variables: a shallow copy of the variables (ansible.builtin.template's lookup deep-copies them all per call).
    With `reuse` (a Reuse), a text rendered before for the same values is returned instead."""
    searchpath = [*list(variables.get("ansible_search_path", [])), loader._basedir, os.path.dirname(source)]
    searchpath = [p for base in searchpath for p in (os.path.join(base, "templates"), base)]
    extra = dict(variables)
    extra.update(template_vars(name, source, dest, include_ansible_managed="ansible_managed" not in extra))
    templar = templar.copy_with_new_env(searchpath=searchpath, available_variables=extra)
    text = loader.get_text_file_contents(source)
    key, values = reuse.keyed(to_text(text), [source, dest], extra, templar.template) if reuse else (None, None)
    kept = reuse.get(key) if key is not None else None
    if kept is not None:
        return kept
    if values:  # templated once for the key: each use in the render reads the value
        templar.available_variables = dict(extra, **values)
    if trust_as_template is not None:
        rendered = templar.template(trust_as_template(text), escape_backslashes=False)
    else:
        rendered = templar.template(to_text(text), preserve_trailing_newlines=True, escape_backslashes=False)
    rendered = "" if rendered is None else to_text(rendered)
    if key is not None:
        reuse.keep(key, rendered)
    return rendered
