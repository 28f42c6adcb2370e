# Controller side of gnss.pointperfect.ztp: reads the target state, decides, calls the ZTP API,
# and asks the target to write.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


import re
from collections import namedtuple

from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import (
    CERT,
    FILES,
    KEY,
    days_left,
    dumps,
    normalize_topics,
    public_view,
)
from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import (
    hardware_id_error,
    token_error,
    ztp_argument_spec,
)
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_deployed import (
    assess,
    deployed_view,
    misattributed,
    probed_state,
    region_error,
    region_option,
)
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_response import ZtpError, credentials_dict


def _client():
    """The ZTP client module, imported when the API may be called: it pulls in requests (about 0.1 CPU-s), which every
    no-op host's worker process would otherwise import for nothing."""
    from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _ztp_client  # noqa: PLC0415

    return _ztp_client


def ZtpClient(**kwargs):
    return _client().ZtpClient(**kwargs)


def api_url_error(url):
    return _client().api_url_error(url)


def ca_path_error(path):
    return _client().ca_path_error(path)


MODULE = "gnss.pointperfect.ztp"
CENSORED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
INSECURE_WARNING = (
    "validate_certs=false: the ZTP API's TLS certificate is NOT verified, so anyone on the network path can "
    "impersonate it and read the token; use ca_path to trust a private CA instead"
)
CHANGING_REASONS = ("missing", "hardware_id_changed", "expiring")  # check mode predicts a change for these
# What one host's provisioning run decided on, handed to its steps (keep, predict, call and write).
Run = namedtuple("Run", "args task_vars target state decision now secrets")
# Every value RETURN promises on success, null (or empty) until known: what check mode returns on a fresh host.
UNKNOWN_VIEW = {
    "client_id": None,
    "plan": None,
    "service": None,
    "broker_host": None,
    "broker_port": None,
    "regions": [],
    "topics": None,
    "ntrip": None,
    "certificate_not_after": None,
    "days_remaining": None,
}

# Same options as DOCUMENTATION and the module part (one definition for both).
ARGUMENT_SPEC = ztp_argument_spec()
# Data, not an option (not documented): the `credentials` state gnss.pointperfect.gateway_probe read in its own round
# trip (the gateway role passes it), used instead of a read of its own when it was read for this very dest, owner,
# group and mode.
PRIVATE_SPEC = dict(_probed_state=dict(type="dict"))
MASK = "********"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # ANSI escapes start with ESC (\x1b); tab and LF are spaces
PEM_LINE_MIN = 16  # lines of a multi-line secret (PEM body lines are 64 characters) redacted on their own


def redact(text, secrets, limit=300):
    """One line of text without any known secret, then cut to limit: redaction comes before the cut, so a secret
    split by the cut (or re-wrapped onto one line) never passes. Secrets of any length are replaced (also those
    shorter than 4 characters, which are known to be secret here: token, private key, NTRIP password, key values);
    control characters and ANSI escapes are never echoed."""
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
        for raw_line in secret.splitlines():
            line = raw_line.strip()
            if len(line) >= PEM_LINE_MIN:
                text = text.replace(line, MASK)
    text = " ".join(_CONTROL.sub("?", text).split())
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):  # a secret put together by the join
        joined = " ".join(secret.split())
        if joined:
            text = text.replace(joined, MASK)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary(view, fingerprint):
    """Secret-free text for diff mode."""
    if not view or not view.get("plan"):
        return ""
    if view.get("ntrip"):
        n = view["ntrip"]
        endpoint = "ntrip://%s:%s/%s" % (n["host"], n["port"], n["mountpoint"])
        endpoint += " (tls %s)" % n["tls"] if n.get("tls") else ""
    else:
        endpoint = "mqtts://%s:%s" % (view.get("broker_host"), view.get("broker_port"))
    lines = [
        "client_id: %s" % view.get("client_id"),
        "fingerprint_sha256: %s" % fingerprint,
        "not_after: %s" % view.get("certificate_not_after"),
        "endpoint: %s" % endpoint,
        "plan: %s" % view.get("plan"),
        "regions: %s" % ", ".join(view.get("regions") or []),
    ]
    return "\n".join(lines) + "\n"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _run_part(self, task_vars, args):
        """Run the module part on the target; its invocation (which holds file contents) is dropped."""
        res = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        res.pop("invocation", None)
        return res

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        secrets = set()
        try:
            _validation, args = self.validate_argument_spec(argument_spec=dict(ARGUMENT_SPEC, **PRIVATE_SPEC))
            probed = args.pop("_probed_state", None)  # data, not an option: not echoed in the invocation
            if args.get("token"):
                secrets.add(args["token"])
            result["invocation"] = {"module_args": dict(args, token=CENSORED if args.get("token") else None)}
            args["region"] = region_option(args["region"])
            for error in (hardware_id_error(args["hardware_id"]), token_error(args.get("token"))):
                if error:
                    raise ZtpError(error)
            if args["activation_timeout"] < 0:
                raise ZtpError("activation_timeout must be 0 (no retry) or more seconds")
            if not args["validate_certs"]:
                result.setdefault("warnings", []).append(INSECURE_WARNING)
            result.update(self._provision(args, task_vars or {}, secrets, probed))
        except ZtpError as e:
            result.update(failed=True, msg=str(e))
        except Exception as e:  # never a traceback with possible secrets: class and censored text only
            if e.__class__.__name__ in ("AnsibleActionFail", "AnsibleActionSkip"):
                raise
            result.update(
                failed=True,
                msg="gnss.pointperfect.ztp failed unexpectedly (%s: %s); please report it"
                % (e.__class__.__name__, redact(e, secrets, 200)),
            )
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        secrets.discard("")
        if isinstance(result.get("msg"), str):
            result["msg"] = redact(result["msg"], secrets, 1000)
        # remove_values replaces secrets of any length (checked: also 1-3 characters) everywhere in the result
        return remove_values(result, secrets) if secrets else result

    def _provision(self, args, task_vars, secrets, probed=None):
        """Read (or take the probed state), decide, then keep, predict, or call the API and write."""
        target = dict((k, args[k]) for k in ("hardware_id", "dest", "owner", "group", "mode"))
        state = probed_state(probed, target)
        if state is None:
            read = self._run_part(task_vars, dict(target, _state="read"))
            if read.get("failed"):
                return {"failed": True, "msg": read.get("msg", "reading %s failed" % args["dest"])}
            state = read["state"]
        deployed, decision, now = assess(state, args["hardware_id"], args)
        out = {"reason": decision.reason, "api_called": False, "changed": False, "region": args["region"]}
        run = Run(args, task_vars, target, state, decision, now, secrets)
        before_view = deployed_view(state, deployed) if deployed.get("credentials") else {}
        files_now = [state["dest"].rstrip("/") + "/" + n for n in FILES if (state["files"].get(n) or {}).get("exists")]
        if not decision.call_api:
            out.update(before_view)
            out["files"] = files_now
            return self._keep(run, out)
        before = summary(before_view, deployed.get("fingerprint"))
        if self._task.check_mode:
            return self._predict(run, out, before_view, before, files_now)
        return self._call_and_write(run, out, before)

    def _keep(self, run, out):
        """No API call: the deployed credentials stay; only their mode/owner is put right."""
        args, state, decision = run.args, run.state, run.decision
        wrong = region_error(args["region"], out.get("regions"))
        if wrong:
            return dict(out, failed=True, changed=False, msg=wrong)
        bad = misattributed(state)
        if bad:
            out["changed"] = True
            if not self._task.check_mode:
                fixed = self._run_part(run.task_vars, dict(run.target, _state="attributes"))
                if fixed.get("failed"):
                    return {"failed": True, "msg": fixed.get("msg"), "reason": decision.reason, "api_called": False}
                out["changed"] = bool(fixed.get("changed"))
            out["msg"] = "credentials are valid; fixed mode/owner of %s" % ", ".join(bad)
        return out

    def _predict(self, run, out, before_view, before, files_now):
        """Check mode when the API would be called: say what would change and why, call nothing."""
        args, state, decision = run.args, run.state, run.decision
        wrong = api_url_error(args["api_url"]) or ca_path_error(args["ca_path"] if args["validate_certs"] else None)
        if wrong:
            return dict(out, failed=True, msg=wrong)
        out.update(UNKNOWN_VIEW, topics=normalize_topics(None))
        out.update(before_view)
        out["files"] = (
            [state["dest"].rstrip("/") + "/" + n for n in FILES]
            if decision.reason == "missing" and not files_now
            else files_now
        )
        out["changed"] = decision.reason in CHANGING_REASONS
        out["msg"] = "would call the ZTP API: %s" % decision.detail
        if self._task.diff and out["changed"]:
            out["diff"] = {
                "before": before,
                "after": "(new credentials from the ZTP API)\n",
                "before_header": "%s (deployed)" % args["dest"],
                "after_header": "ZTP API",
            }
        return out

    def _fetch(self, args, secrets, out):
        """The API call; its secrets join `secrets` at once. Returns (model, client) or (None, error result)."""
        client = ZtpClient(
            api_url=args["api_url"],
            timeout=args["timeout"],
            retries=args["retries"],
            validate_certs=args["validate_certs"],
            ca_path=args["ca_path"],
            activation_timeout=args["activation_timeout"],
        )
        try:
            client.check_request(args["token"], args["hardware_id"])  # token, hardware id, ca_path: no call yet
            out["api_called"] = True
            model = client.fetch(
                args["token"], args["hardware_id"], args["given_name"] or args["hardware_id"], args["tags"]
            )
        except ZtpError as e:
            return None, dict(out, failed=True, msg=str(e))
        for secret in (model.get("private_key_pem"), (model.get("ntrip") or {}).get("password")):
            if secret:
                secrets.add(secret)
        for key in (model.get("dynamickeys") or {}).values():
            secrets.add(key["value"])
        return model, client

    def _call_and_write(self, run, out, before):
        """Call the API, check the answer against the options, and write it on the target."""
        args, target, decision = run.args, run.target, run.decision
        model, client_or_error = self._fetch(args, run.secrets, out)
        if model is None:
            return client_or_error
        client = client_or_error
        wrong = region_error(args["region"], model.get("regions"))
        if wrong:
            return dict(out, failed=True, msg=wrong)
        document = credentials_dict(model, args["hardware_id"], args["given_name"] or args["hardware_id"], args["dest"])
        write = dict(target, _state="write", _credentials=dumps(document).decode("utf-8"))
        if model["certificate_pem"] is not None:
            write.update(_certificate=model["certificate_pem"], _private_key=model["private_key_pem"])
        else:
            write["_remove"] = [CERT, KEY]
        written = self._run_part(run.task_vars, write)
        if written.get("failed"):
            return dict(out, failed=True, msg=written.get("msg", "writing credentials failed"))
        view = public_view(document)
        view["days_remaining"] = days_left(
            None if model["not_after"] is None else model["not_after"].timestamp(), run.now
        )
        out.update(view)
        out["files"] = written.get("files", [])
        out["changed"] = bool(written.get("changed"))
        out["msg"] = "credentials %s (%s)" % ("written" if out["changed"] else "confirmed unchanged", decision.detail)
        if client.activation_waited:
            out["msg"] += "; the device was activated after %d s" % client.activation_waited
        after = summary(view, model.get("fingerprint"))
        if self._task.diff and (out["changed"] or before != after):
            out["diff"] = {
                "before": before,
                "after": after,
                "before_header": "%s (deployed)" % args["dest"],
                "after_header": "%s (new)" % args["dest"],
            }
        return out


__all__ = ["ARGUMENT_SPEC", "ActionModule"]
