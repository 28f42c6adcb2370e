"""Integration fixtures: one ZTP simulator per test module and a helper that runs the ztp playbook."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pointperfect_sim.server import run_in_thread

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "ztp.yml"

# Simulator profiles used by the tests, by name; each gets a fresh lowercase UUID token. Region and first-call
# activation are pinned where a test counts calls or regions (the simulator's defaults may change); "default" keeps
# the simulator's defaults (every region of the plan, new devices "not activated" on their first call).
PROFILES = {
    "ip": {"plan": "ip", "region": "eu", "not_activated_calls": 0},
    "ip2": {"plan": "ip", "region": "eu", "not_activated_calls": 0},
    "ip+lband": {"plan": "ip+lband", "region": "us", "not_activated_calls": 0},
    "ntrip": {"plan": "ntrip", "not_activated_calls": 0},
    "live_both": {
        "plan": "ip",
        "region": "eu",
        "live_both": True,
        "not_activated_calls": 0,
        "ntrip": {"host": "ppntrip.services.u-blox.com"},  # u-blox's caster: TLS port 2102 is known
    },
    "default": {"plan": "ip"},
    "multi": {"plan": "ip", "region": ["eu", "us"], "not_activated_calls": 0},
    "pending": {"plan": "ip", "region": "eu", "not_activated_calls": 2},
    "flaky": {"error": "rate_limit", "error_calls": 2, "retry_after": 1, "not_activated_calls": 0},
    "already_registered": {"error": "already_registered"},
    "no_plan": {"error": "no_plan"},
    "not_whitelisted": {"error": "not_whitelisted"},
    "bad_token": {"error": "bad_token"},
    "rate_limit": {"error": "rate_limit", "retry_after": 1},
    "server_error": {"error": "server_error", "error_status": 500},
    "unavailable": {"error": "server_error", "error_status": 503, "retry_after": 1},
    "malformed": {"error": "malformed"},
    "timeout": {"error": "timeout", "timeout_seconds": 4},
    "not_activated": {"not_activated_calls": 1000},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A running simulator with the profiles above; `.tokens` maps profile name -> token."""
    tokens = {name: str(uuid.uuid4()) for name in PROFILES}
    handle = run_in_thread(tmp_path_factory.mktemp("sim"), {tokens[n]: p for n, p in PROFILES.items()})
    handle.tokens = tokens
    try:
        yield handle
    finally:
        handle.stop()


class Run:
    """Outcome of one ansible-playbook run: rc, output and the per-case results (by case name)."""

    def __init__(self, proc, results):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.results = {r["item"]["name"]: r for r in results}

    def __getitem__(self, name):
        return self.results[name]


@pytest.fixture(scope="module")
def playbook(sim, ansible_env, tmp_path_factory):
    """run(cases, check=False, diff=False, verbose=True, env=None) -> Run."""
    work = tmp_path_factory.mktemp("runs")
    counter = iter(range(10_000))

    def run(cases, *, check=False, diff=False, verbose=True, env=None):
        n = next(counter)
        results_file = work / f"results-{n}.json"
        variables = {
            "cases": cases,
            "tokens": sim.tokens,
            "api_url": sim.url,
            "ca_path": sim.ca_path,
            "results_file": str(results_file),
            "activation_timeout": 20,  # the tasks' default here; a case may set its own
            "ansible_python_interpreter": sys.executable,
        }
        vars_file = work / f"vars-{n}.json"
        vars_file.write_text(json.dumps(variables))
        os.chmod(vars_file, 0o600)
        cmd = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{vars_file}",
            str(PLAYBOOK),
        ]
        if verbose:
            cmd.append("-vvv")
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        proc = subprocess.run(
            cmd, env=dict(ansible_env, **(env or {})), capture_output=True, text=True, timeout=600, check=False
        )
        assert results_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        return Run(proc, json.loads(results_file.read_text()))

    return run
