# Controller side of gnss.pointperfect.gateway_files: resolves src/template on the controller (templates rendered
# with the task's variables), then runs the module part once on the target.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._template_vars import render

MODULE = "gnss.pointperfect.gateway_files"
SOURCES = ("content", "src", "template")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _render(self, task_vars, name, dest):
        """Render one template file on the controller with the task's templar (plugin_utils/_template_vars.py)."""
        return render(self._templar, self._loader, self._find_needle("templates", name), name, dest, task_vars)

    def _resolve(self, task_vars, spec):
        """One file spec with its content filled in (src read, template rendered); src/template removed."""
        spec = dict(spec)
        path = spec.get("path")
        if not path:
            raise AnsibleError("every files item needs a path")
        given = [key for key in SOURCES if spec.get(key) is not None]
        if spec.get("state", "present") == "absent":
            for key in SOURCES:
                spec.pop(key, None)
            return spec
        if len(given) != 1:
            raise AnsibleError("%s: give exactly one of content, src or template (got %s)" % (path, given or "none"))
        if "src" in given:
            source = self._find_needle("files", spec.pop("src"))
            with open(source, "rb") as f:
                spec["content"] = to_text(f.read(), errors="surrogate_or_strict")
        elif "template" in given:
            spec["content"] = self._render(task_vars, spec.pop("template"), path)
        spec.pop("src", None)
        spec.pop("template", None)
        return spec

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        files = args.get("files") or []
        if not isinstance(files, list) or not all(isinstance(item, dict) for item in files):
            result.update(failed=True, msg="files must be a list of dictionaries")
            return result
        try:
            args["files"] = [self._resolve(task_vars, item) for item in files]
        except AnsibleError as e:
            result.update(failed=True, msg=to_text(e.message if hasattr(e, "message") else e))
            return result
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        return result
