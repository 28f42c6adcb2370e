# Bench callback: per-task wall time and per-host results, per-host recap; written as JSON to $FLEET_STATS_OUT.
# Enable with ANSIBLE_CALLBACK_PLUGINS=bench/fleet/callback_plugins ANSIBLE_CALLBACKS_ENABLED=fleet_stats.
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fleet_stats
type: aggregate
short_description: task timings and recap as JSON for bench/fleet/run.py
description: Writes {tasks, recap, started, ended} to the file named by FLEET_STATS_OUT at the end of the play.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_stats"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started = time.time()
        self.tasks: list[dict] = []

    def _start(self, task, kind: str) -> None:
        now = time.time()
        if self.tasks and self.tasks[-1]["end"] is None:
            self.tasks[-1]["end"] = now
        self.tasks.append({"name": task.get_name(), "kind": kind, "start": now, "end": None, "hosts": {}})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task, "task")

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task, "handler")

    def _result(self, result, status: str) -> None:
        if not self.tasks:
            return
        if status == "ok" and result._result.get("changed"):
            status = "changed"
        self.tasks[-1]["hosts"][result._host.get_name()] = status

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        now = time.time()
        if self.tasks and self.tasks[-1]["end"] is None:
            self.tasks[-1]["end"] = now
        recap = {h: stats.summarize(h) for h in sorted(stats.processed)}
        out = os.environ.get("FLEET_STATS_OUT")
        if out:
            with open(out, "w") as fh:
                json.dump({"started": self.started, "ended": now, "tasks": self.tasks, "recap": recap}, fh, indent=1)
