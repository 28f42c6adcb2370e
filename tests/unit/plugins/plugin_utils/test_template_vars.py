"""The collection's template variables match ansible-core's own (which collections must no longer import)."""

import datetime

import pytest
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._template_vars import template_vars


@pytest.mark.parametrize("managed", [True, False])
def test_same_variables_as_ansible_core(tmp_path, managed):
    core = pytest.importorskip("ansible._internal._templating._template_vars")
    source = tmp_path / "unit.j2"
    source.write_text("{{ ansible_managed }}\n")
    ours = template_vars("unit.j2", str(source), "/etc/x", include_ansible_managed=managed)
    theirs = core.generate_ansible_template_vars(
        path="unit.j2", fullpath=str(source), dest_path="/etc/x", include_ansible_managed=managed
    )
    assert set(ours) == set(theirs)
    for key in set(ours) - {"template_run_date"}:
        assert ours[key] == theirs[key], key
    assert abs(ours["template_run_date"] - theirs["template_run_date"]) < datetime.timedelta(seconds=5)
