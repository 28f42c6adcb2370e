# Lookup gnss.pointperfect.gateway_template: a template rendered exactly as gateway_files' action renders it, for the
# gateway role's no-op decision (the hash of the wanted file against the probe's), without the deep copy of every
# variable that ansible.builtin.template's lookup makes on each call.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
name: gateway_template
author:
  - gnss.pointperfect maintainers (@gnss-pointperfect)
version_added: 0.1.0
short_description: Render a template file as gnss.pointperfect.gateway_files renders it
description:
  - Renders each template file on the controller with the current variables plus the C(template_*) variables and
    C(ansible_managed), with the same code as a C(template) item of M(gnss.pointperfect.gateway_files), so the hash
    of the result equals the hash of the file that module deploys.
  - Unlike P(ansible.builtin.template#lookup), it does not deep-copy every variable on each call. With the gateway
    role's variables that copy costs about 10 ms of controller CPU per call, and the role's no-op decision renders
    two templates for every host.
options:
  _terms:
    description:
      - Template file names, searched for as P(ansible.builtin.template#lookup) does (the role's and the play's
        C(templates) directories).
    required: true
    type: list
    elements: str
  dest:
    description: The path the file is deployed to (the C(template_destpath) variable).
    type: str
  reuse:
    description:
      - Return the text rendered before (by this lookup, in the same C(ansible-playbook) run) for the same template,
        O(dest) and values of every variable the template names, instead of rendering it again. Deciding that
        costs templating those variables only; rendering a template costs compiling and evaluating all of it, for
        every host.
      - Only for templates whose text depends on their variables alone. A template that calls a lookup other than
        C(ansible.builtin.vars) with constant variable names, names C(query), C(now), C(lipsum) or
        C(template_run_date), uses the C(random), C(shuffle) or C(password_hash) filter, or includes or imports
        another template, is always rendered.
    type: bool
    default: false
notes:
  - The templates see the variables of the task that calls the lookup.
seealso:
  - module: gnss.pointperfect.gateway_files
  - plugin: ansible.builtin.template
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: The SHA-256 of the unit as gateway_files would deploy it
  ansible.builtin.debug:
    msg: "{{ lookup('gnss.pointperfect.gateway_template', 'x.service.j2', dest=unit_path) | hash('sha256') }}"
  vars:
    unit_path: /etc/systemd/system/x.service
"""

RETURN = r"""
_raw:
  description: The rendered text of each template, in the order of the terms.
  type: list
  elements: str
"""

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._template_vars import Reuse, render  # noqa: E402

# the texts this controller process rendered (reuse: true); a lookup plugin's instance lives for one call only
_REUSE = Reuse()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        dest, reuse = self.get_option("dest"), (_REUSE if self.get_option("reuse") else None)
        rendered = []
        for term in terms:
            source = self.find_file_in_search_path(variables, "templates", term)
            if not source:
                raise AnsibleError("gateway_template: template %s not found" % term)
            rendered.append(render(self._templar, self._loader, source, term, dest, variables, reuse))
        return rendered
