"""The collection's template variables match ansible-core's own (which collections must no longer import)."""

import datetime

import pytest
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._template_vars import Reuse, template_vars


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


# ----------------------------------------------------------------------------------- Reuse (gateway_template's reuse)

UNIT = "# {{ ansible_managed }}\n{% set dev = lband_device %}ExecStart={{ command }} {{ j(port) }}{{ dev or '' }}\n"


def test_reuse_keys_on_the_values_of_the_names_a_template_reads():
    reuse = Reuse()
    base = {"ansible_managed": "managed", "lband_device": None, "command": "{{ python }} -I", "port": 1,
            "python": "/usr/bin/python3", "unrelated": "x"}  # fmt: skip
    template = lambda value: value.replace("{{ python }}", "/usr/bin/python3") if isinstance(value, str) else value  # noqa: E731
    key = reuse.keyed(UNIT, ["unit.j2", "/etc/x"], base, template)[0]
    assert key is not None and key == reuse.keyed(UNIT, ["unit.j2", "/etc/x"], dict(base), template)[0]
    # a variable the template does not read changes nothing; one it reads, the destination or the text do
    assert reuse.keyed(UNIT, ["unit.j2", "/etc/x"], dict(base, unrelated="y"), template)[0] == key
    for changed in ({"port": 2}, {"lband_device": "/dev/ttyACM1"}, {"command": "python -I"}):
        assert reuse.keyed(UNIT, ["unit.j2", "/etc/x"], dict(base, **changed), template)[0] != key, changed
    assert reuse.keyed(UNIT, ["unit.j2", "/etc/y"], base, template)[0] != key
    assert reuse.keyed(UNIT + "#", ["unit.j2", "/etc/x"], base, template)[0] != key
    # unset and set to something else differ
    unset = dict(base)
    del unset["port"]
    assert reuse.keyed(UNIT, ["unit.j2", "/etc/x"], unset, template)[0] not in (key, None)
    reuse.keep(key, "text")
    assert reuse.get(key) == "text" and reuse.get("other") is None


@pytest.mark.parametrize(
    "text",
    [
        "{{ lookup('ansible.builtin.pipe', 'date') }}",
        "{{ lookup('ansible.builtin.vars', 'x') }}{{ lookup('ansible.builtin.env', 'HOME') }}",
        "{{ lookup('ansible.builtin.vars', x) }}",
        "{{ lookup('ansible.builtin.vars', 'x', default='') }}",
        "{{ query('x') }}",
        "{{ now() }}",
        "{{ template_run_date }}",
        "{{ [1, 2] | shuffle }}",
        "{{ 10 | random }}",
        "{{ 'x' | password_hash }}",
        "{% include 'other.j2' %}",
        "{% import 'macros.j2' as m %}{{ m.x() }}",
        "#jinja2:variable_start_string:'[%'\n[% x %]",
        "{{ unclosed",
    ],
)
def test_reuse_never_keys_a_template_that_depends_on_more(text):
    assert Reuse().keyed(text, ["t.j2", None], {"x": 1}, lambda value: value)[0] is None


def test_reuse_renders_when_a_value_does_not_template():
    def broken(value):
        raise ValueError("undefined")

    assert Reuse().keyed("{{ x }}", ["t.j2", None], {"x": "{{ y }}"}, broken)[0] is None


def test_reuse_keeps_a_bounded_number_of_texts():
    reuse = Reuse()
    for i in range(Reuse.KEEP + 10):
        reuse.keep(str(i), f"t{i}")
    assert reuse.get("0") is None and reuse.get(str(Reuse.KEEP + 9)) == f"t{Reuse.KEEP + 9}"


def test_reuse_renders_when_a_value_does_not_serialize():
    class Odd(dict):
        def items(self):
            raise RuntimeError("a marker")

    assert Reuse().keyed("{{ x }}", ["t.j2", None], {"x": Odd(a=1)}, lambda value: value)[0] is None


def test_reuse_follows_the_variables_a_vars_lookup_reads():
    """lookup('ansible.builtin.vars', 'name') with constant names reads those variables: they join the key."""
    text = "{% if kind == 'file' and lookup('ansible.builtin.vars', 'dir_ok') | bool %}RW={{ d }}{% endif %}"
    reuse = Reuse()
    assert reuse.names(text) == ["d", "dir_ok", "kind"]
    base = {"kind": "file", "dir_ok": True, "d": "/var/lib/x"}
    key = reuse.keyed(text, ["u.j2", None], base, lambda value: value)[0]
    assert key is not None
    assert reuse.keyed(text, ["u.j2", None], dict(base, dir_ok=False), lambda value: value)[0] != key
    assert Reuse().names("{{ lookup('vars', 'a', 'b') }}") == ["a", "b"]
