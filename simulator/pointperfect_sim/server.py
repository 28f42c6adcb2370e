"""The simulated Thingstream ZTP endpoint (`POST /ztp/pointperfect/credentials`) plus its `/_sim` admin API, over HTTPS.

Answers follow docs/architecture.md Contract 5 and the public facts in the spec (shapes, errors, texts).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography import x509

from . import profiles as prof
from .client import SimClient
from .pki import PKI
from .proc import write_atomic

CREDENTIALS_PATH = "/ztp/pointperfect/credentials"
ADMIN_PREFIX = "/_sim"

# Dynamic keys rotate on a fixed 28-day grid; the anchor is the documented example start (GPS week 2224, tow 518400).
KEY_ANCHOR_MS = 1661558382000
KEY_PERIOD_MS = 2419200000
KEY_DURATION_MS = KEY_PERIOD_MS - 1  # 2419199999: current.duration as the service sends it
# next.duration as u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json shows it (29 days - 1 ms): the next key
# still starts on the grid, it is only announced as valid a day longer.
KEY_NEXT_DURATION_MS = 2505599999

# Error texts exactly as clients see them (RTK-E HTTP_Client.ino); bad_token is our choice (not documented).
MSG_ALREADY_REGISTERED = "Device already registered"
MSG_NO_PLAN = "No plan for device device:{}"
MSG_NOT_WHITELISTED = "Device hardware code not whitelisted"
MSG_UNAUTHORIZED = "Invalid token"
MSG_RATE_LIMIT = "Too Many Requests"

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 64 * 1024


class ApiError(Exception):
    """An HTTP answer other than 200 (status, text message, extra headers)."""

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _atomic_json(path: Path, data, mode: int = 0o600) -> None:
    """Write JSON atomically (devices.json holds private keys: 0600 by default)."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def dynamic_keys(seed: str, now_ms: int | None = None) -> dict:
    """`{current, next}` for the 28-day period containing now; values derive from the seed, so they roll over
    naturally (next becomes current) and change only when the seed is rotated."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    start = KEY_ANCHOR_MS + ((now_ms - KEY_ANCHOR_MS) // KEY_PERIOD_MS) * KEY_PERIOD_MS

    def key(s: int, duration: int) -> dict:
        value = hmac.new(bytes.fromhex(seed), str(s).encode(), hashlib.sha256).hexdigest()[:32]
        return {"start": s, "duration": duration, "value": value}

    return {"current": key(start, KEY_DURATION_MS), "next": key(start + KEY_PERIOD_MS, KEY_NEXT_DURATION_MS)}


def _regions(profile: dict) -> list[str]:
    regions = profile["region"] if isinstance(profile["region"], list) else [profile["region"]]
    return sorted(regions, key=lambda r: REGION_ORDER.index(r) if r in REGION_ORDER else len(REGION_ORDER))


# Region names as the service writes them in descriptions ("... for EU region", "... for Japan region"):
# u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json; KR as in sparkfun/SparkFun_RTK_Everywhere_Firmware
# Firmware/RTK_Everywhere/settings.h Regional_Information_Table (US, EU, AU, KR, Japan).
REGION_NAMES = {"eu": "EU", "us": "US", "kr": "KR", "au": "AU", "jp": "Japan"}
REGION_ORDER = ("eu", "us", "kr", "au", "jp")
# Sub-streams of a region's correction topic and their descriptions (XPLR emuZtpResponse.json).
SUB_STREAMS = (
    ("gad", "geographic area definition topic"),
    ("hpac", "high-precision atmosphere correction topic"),
    ("ocb", "GNSS orbit, clocks and bias topic"),
    ("clk", "GNSS clock topic"),
)
FREQUENCIES_TOPIC = "/pp/frequencies/Lb"
PLAN_LABELS = {"ip": "IP", "ip+lband": "L-band + IP", "lband": "L-band"}


def subscriptions(profile: dict) -> list[dict]:
    """The subscriptions list of an MQTT plan, in the shape of u-blox/XPLR-HPG-software
    XPLR-HPG-SW/bin/emuZtpResponse.json (an ip+lband answer):

    - key topic ("<label> key distribution topic"), AssistNow ("<label> AssistNow topic");
    - per region, in the order eu us kr au jp: the top-level correction topic ("<label> correction topic for EU
      region", "... for Japan region") and its /gad /hpac /ocb /clk sub-streams, then a path-only entry joining the
      sub-streams with ';' (AU: only its correction topic, as in the sample);
    - ip+lband: "<label> frequencies topic" /pp/frequencies/Lb after the US block, joined into US's path-only entry;
    - lband only: key topic /pp/ubx/0236/Lb, JSON keys /pp/key/Lb, AssistNow and /pp/frequencies/Lb, no correction
      topic (corrections come over the satellite; facts section 1, pygnssutils TOPIC_FREQ).
    ip: /pp/ubx/0236/ip and /pp/ip/<r> (sparkfun/SparkFun_RTK_Everywhere_Firmware HTTP_Client.ino); ip+lband:
    /pp/ubx/0236/Lb and /pp/Lb/<r>."""
    plan = profile["plan"]
    label = PLAN_LABELS[plan]
    stream = "ip" if plan == "ip" else "Lb"
    subs = [
        {"description": f"{label} key distribution topic", "path": f"/pp/ubx/0236/{stream}"},
        {"description": f"{label} AssistNow topic", "path": "/pp/ubx/mga"},
    ]
    if plan == "lband":
        subs.append({"description": f"{label} JSON key distribution topic", "path": "/pp/key/Lb"})
        subs.append({"description": f"{label} frequencies topic", "path": FREQUENCIES_TOPIC})
        subs.append({"path": f"/pp/ubx/0236/Lb;/pp/key/Lb;{FREQUENCIES_TOPIC}"})
        return subs
    regions = _regions(profile)
    freq_after = "us" if "us" in regions else regions[-1]
    for region in regions:
        name = REGION_NAMES[region]
        top = f"/pp/{stream}/{region}"
        subs.append({"description": f"{label} correction topic for {name} region", "path": top})
        if region == "au":
            continue
        for sub, what in SUB_STREAMS:
            subs.append({"description": f"{label} {what} for {name} region", "path": f"{top}/{sub}"})
        joined = [f"{top}/{sub}" for sub, _ in SUB_STREAMS]
        if plan == "ip+lband" and region == freq_after:
            subs.append({"description": f"{label} frequencies topic", "path": FREQUENCIES_TOPIC})
            joined.append(FREQUENCIES_TOPIC)
        subs.append({"path": ";".join(joined)})
    if plan == "ip+lband" and freq_after == "au":
        subs.append({"description": f"{label} frequencies topic", "path": FREQUENCIES_TOPIC})
    return subs


class Simulator:
    """Thread-safe state: profiles, issued devices, call counters. Persists devices to `DIR/devices.json`."""

    def __init__(self, state_dir, profiles: dict | None = None) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = PKI(self.dir / "pki")
        self.initial_profiles = prof.normalize_all(profiles if profiles is not None else prof.DEMO_PROFILES)
        self.profiles = dict(self.initial_profiles)
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.devices: dict[str, dict] = {}
        self.key_seeds: dict[str, str] = {}
        self._reset_counters()
        self._load()

    # ----- persistence and counters
    def _load(self) -> None:
        path = self.dir / "devices.json"
        if path.exists():
            data = json.loads(path.read_text())
            self.devices = data.get("devices", {})
            self.key_seeds = data.get("key_seeds", {})

    def _save(self) -> None:
        _atomic_json(self.dir / "devices.json", {"devices": self.devices, "key_seeds": self.key_seeds})

    def _reset_counters(self) -> None:
        self.total = 0
        self.by_token: dict[str, int] = {}
        self.by_device: dict[str, int] = {}
        self.profile_calls: dict[str, int] = {}  # per device since the profile was (re)set

    def calls(self) -> dict:
        with self.lock:
            return {"total": self.total, "by_token": dict(self.by_token), "by_device": dict(self.by_device)}

    def reset(self, scope: str = "all") -> None:
        """scope "calls": counters only; "all": counters, devices, key seeds and profiles back to the startup set."""
        with self.lock:
            self._reset_counters()
            if scope == "all":
                self.devices.clear()
                self.key_seeds.clear()
                self.profiles = dict(self.initial_profiles)
                self._save()

    def put_profile(self, token: str, profile: dict) -> dict:
        normalized = prof.normalize(profile)
        with self.lock:
            self.profiles[token] = normalized
            for dev in [d for d in self.profile_calls if d.startswith(token + "/")]:
                del self.profile_calls[dev]
        return normalized

    def delete_profile(self, token: str) -> bool:
        with self.lock:
            return self.profiles.pop(token, None) is not None

    # ----- device credentials
    def _seed(self, token: str) -> str:
        if token not in self.key_seeds:
            self.key_seeds[token] = secrets.token_hex(32)
        return self.key_seeds[token]

    def _ensure_parts(self, dev: dict, profile: dict) -> None:
        """Issue whatever this plan needs and the device lacks (a plan change on the token adds the missing parts)."""
        mqtt = profile["plan"] != "ntrip"
        ntrip = profile["plan"] == "ntrip" or profile["live_both"]
        if mqtt and not dev.get("certificate"):
            dev["certificate"], dev["privateKey"] = self.pki.issue_client(dev["clientId"], days=profile["cert_days"])
        if ntrip and not dev.get("ntripPassword"):
            dev["ntripUser"] = dev.get("ntripUser") or f"pp-{secrets.token_hex(6)}"
            dev["ntripPassword"] = secrets.token_urlsafe(12)

    def rotate(self, token: str, hwid: str) -> dict:
        """New cert/key, new dynamic keys (for the token) and new NTRIP password; clientId and userName stay."""
        with self.lock:
            dev = self._device(token, hwid)
            profile = self.profiles.get(token)
            for field in ("certificate", "privateKey", "ntripPassword"):
                dev.pop(field, None)
            self.key_seeds[token] = secrets.token_hex(32)
            if profile is not None:
                self._ensure_parts(dev, profile)
            dev["generation"] = dev.get("generation", 1) + 1
            self._save()
            return self._summary(token, hwid, dev)

    def expire(self, token: str, hwid: str, days: float) -> dict:
        """Reissue the device certificate (same key) so it has `days` left (<= 0: already expired)."""
        with self.lock:
            dev = self._device(token, hwid)
            if not dev.get("certificate"):
                raise ApiError(409, f"device {token}/{hwid} has no certificate (NTRIP-only plan)")
            dev["certificate"], dev["privateKey"] = self.pki.issue_client(
                dev["clientId"], days=days, key_pem=dev["privateKey"]
            )
            self._save()
            return self._summary(token, hwid, dev)

    def _device(self, token: str, hwid: str) -> dict:
        dev = self.devices.get(f"{token}/{hwid}")
        if dev is None:
            raise ApiError(404, f"no device {token}/{hwid}")
        return dev

    def _summary(self, token: str, hwid: str, dev: dict) -> dict:
        not_after = None
        if dev.get("certificate"):
            cert = x509.load_pem_x509_certificate(dev["certificate"].encode())
            not_after = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "token": token,
            "hardwareId": hwid,
            "givenName": dev.get("givenName"),
            "clientId": dev["clientId"],
            "generation": dev.get("generation", 1),
            "certificate_not_after": not_after,
            "ntripUser": dev.get("ntripUser"),
        }

    def list_devices(self) -> list[dict]:
        with self.lock:
            return [self._summary(*key.split("/", 1), dev) for key, dev in sorted(self.devices.items())]

    # ----- the ZTP call
    def count(self, token, hwid) -> None:
        """Count one real credentials call (admin calls never count)."""
        with self.lock:
            self.total += 1
            if isinstance(token, str):
                self.by_token[token] = self.by_token.get(token, 0) + 1
                if isinstance(hwid, str):
                    key = f"{token}/{hwid}"
                    self.by_device[key] = self.by_device.get(key, 0) + 1

    def lookup(self, token: str) -> dict:
        """The token's profile, or the bad-token answer (unknown, wrong case or not a UUID all look the same)."""
        with self.lock:
            profile = self.profiles.get(token) if prof.TOKEN_RE.match(token) else None
        if profile is None:
            raise ApiError(401, MSG_UNAUTHORIZED)
        return profile

    def next_call_number(self, token: str, hwid: str) -> int:
        """1-based number of this call for the device since its profile was set."""
        with self.lock:
            key = f"{token}/{hwid}"
            self.profile_calls[key] = self.profile_calls.get(key, 0) + 1
            return self.profile_calls[key]

    def activated(self, token: str, hwid: str) -> bool:
        """Whether the device got its credentials once (then it is never "not activated" again)."""
        with self.lock:
            return bool(self.devices.get(f"{token}/{hwid}", {}).get("activated"))

    def credentials(self, token: str, hwid: str, given_name: str, tags, profile: dict) -> dict:
        """Register or look up the device and build the 200 body."""
        key = f"{token}/{hwid}"
        with self.lock:
            dev = self.devices.get(key)
            if dev is None:
                dev = {
                    "clientId": str(uuid.uuid4()),
                    "givenName": given_name,
                    "tags": tags,
                    "generation": 1,
                    "created": int(time.time()),
                }
                self.devices[key] = dev
            elif dev.get("activated") and not profile["return_existing"]:
                raise ApiError(403, MSG_ALREADY_REGISTERED)
            self._ensure_parts(dev, profile)
            dev["activated"] = True
            seed = self._seed(token)
            self._save()
            dev = dict(dev)
        return self.body(dev, profile, seed, activated=True)

    def body(self, dev: dict, profile: dict, seed: str, activated: bool) -> dict:
        plan = profile["plan"]
        out: dict = {}
        if plan != "ntrip":
            out.update(
                clientId=dev["clientId"],
                brokerHost=profile["broker_host"],
                supportsLband=plan in ("lband", "ip+lband"),
                supportsMqtt=plan in ("ip", "ip+lband"),
                dynamickeys=dynamic_keys(seed),
                subscriptions=subscriptions(profile),
                subscriptionsTitle="Topics",  # XPLR emuZtpResponse.json
                rotatingKeyTitle=f"{PLAN_LABELS[plan]} Dynamic Keys",  # there: "L-band + IP Dynamic Keys"
            )
            if activated:
                out.update(certificate=dev["certificate"], privateKey=dev["privateKey"])
        else:
            out.update(supportsLband=False, supportsMqtt=False)
        if activated and (plan == "ntrip" or profile["live_both"]):
            ntrip = profile["ntrip"]
            shared = ntrip["shared_credentials"]
            out["rtcmCredentials"] = {
                "endpoint": ntrip["host"],
                "httpPort": str(ntrip["port"]),  # a string, as at least one client sees it
                "userName": shared["user"] if shared else dev["ntripUser"],
                "password": shared["password"] if shared else dev["ntripPassword"],
                "mountPoint": ntrip["mountpoint"],
            }
        return out

    def not_activated_body(
        self, token: str, hwid: str, profile: dict, given_name: str | None = None, tags=None
    ) -> dict:
        """A 200 without certificate/privateKey/rtcmCredentials; the device is registered but not active yet."""
        with self.lock:
            key = f"{token}/{hwid}"
            changed = token not in self.key_seeds
            seed = self._seed(token)
            if key not in self.devices:
                self.devices[key] = {
                    "clientId": str(uuid.uuid4()),
                    "givenName": given_name,
                    "tags": tags,
                    "generation": 1,
                    "created": int(time.time()),
                }
                changed = True
            if changed:
                self._save()
            dev = dict(self.devices[key])
        return self.body(dev, profile, seed, activated=False)


class Handler(BaseHTTPRequestHandler):
    """One HTTP request: the ZTP endpoint or the admin API."""

    protocol_version = "HTTP/1.1"
    server_version = "PointPerfectSim/0.1"
    sim: Simulator  # set on the subclass made per server

    def log_message(self, format, *args):
        if getattr(self.server, "verbose", False):
            sys.stderr.write(f"pointperfect-sim: {self.address_string()} {format % args}\n")

    # ----- plumbing
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _api_error(self, err: ApiError, fmt: str = "text") -> None:
        if fmt == "json":
            self._send(err.status, json.dumps({"message": err.message}).encode(), "application/json", err.headers)
        else:
            self._send(err.status, err.message.encode(), "text/plain; charset=utf-8", err.headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "Length Required")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Bad Request: invalid Content-Length") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "Payload Too Large")
        return self.rfile.read(length)

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        try:
            if path == CREDENTIALS_PATH:
                if method != "POST":
                    self._read_body()
                    raise ApiError(405, "Method Not Allowed", {"Allow": "POST"})
                self._credentials()
            elif path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
                self._admin(method, path[len(ADMIN_PREFIX) :])
            else:
                self._read_body()
                raise ApiError(404, "Not Found")
        except ApiError as err:
            if path.startswith(ADMIN_PREFIX):
                self._send(err.status, json.dumps({"error": err.message}).encode(), "application/json", err.headers)
            else:
                self._api_error(err)
        except OSError:  # the client went away
            self.close_connection = True
        except Exception:  # a simulator bug: answer 500 and show it
            traceback.print_exc()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(500, b"Internal Server Error", "text/plain; charset=utf-8")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def do_DELETE(self):
        self._route("DELETE")

    # ----- ZTP
    def _parse_request(self) -> tuple[str, str, str, list | None]:
        try:
            raw = self._read_body()
        except ApiError:
            self.sim.count(None, None)
            raise
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        fields = data if isinstance(data, dict) else {}
        token, hwid, name, tags = (fields.get(k) for k in ("token", "hardwareId", "givenName", "tags"))
        self.sim.count(token, hwid)  # every call to the endpoint counts, valid or not
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "Unsupported Media Type: Content-Type must be application/json")
        if data is None:
            raise ApiError(400, "Bad Request: body is not valid JSON")
        if not isinstance(data, dict):
            raise ApiError(400, "Bad Request: body must be a JSON object")
        for field, value in (("token", token), ("hardwareId", hwid), ("givenName", name)):
            if not isinstance(value, str) or not value.strip():
                raise ApiError(400, f"Bad Request: {field} is required and must be a non-empty string")
        if len(hwid) > 128 or len(name) > 128:
            raise ApiError(400, "Bad Request: hardwareId and givenName are limited to 128 characters")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise ApiError(400, "Bad Request: tags must be a list of strings")
        return token, hwid, name, tags

    def _credentials(self) -> None:
        token, hwid, name, tags = self._parse_request()
        profile = self.sim.lookup(token)
        if profile["delay"] and self.sim.stopping.wait(profile["delay"]):
            self.close_connection = True
            return
        call = self.sim.next_call_number(token, hwid)
        error = profile["error"]
        if error and (profile["error_calls"] is None or call <= profile["error_calls"]):
            self._fail(error, profile, token)
            return
        try:
            if call <= profile["not_activated_calls"] and not self.sim.activated(token, hwid):
                body = self.sim.not_activated_body(token, hwid, profile, name, tags)
            else:
                body = self.sim.credentials(token, hwid, name, tags, profile)
        except ApiError as err:
            self._api_error(err, profile["error_format"])
            return
        self._json(200, body)

    def _fail(self, error: str, profile: dict, token: str) -> None:
        fmt = profile["error_format"]
        if error == "timeout":
            # Hold the request longer than any client waits, then drop the connection without an answer.
            self.sim.stopping.wait(profile["timeout_seconds"])
            self.close_connection = True
            return
        if error == "malformed":
            truncated = '{"clientId": "' + str(uuid.uuid4()) + '", "certificate": "-----BEGIN CERTIFICATE-----\\nMIID'
            self._send(200, truncated.encode(), "application/json")
            return
        retry = {"Retry-After": profile["retry_after"]}
        errors = {
            "already_registered": ApiError(403, MSG_ALREADY_REGISTERED),
            "no_plan": ApiError(403, MSG_NO_PLAN.format(uuid.uuid5(uuid.NAMESPACE_URL, token))),
            "not_whitelisted": ApiError(403, MSG_NOT_WHITELISTED),
            "bad_token": ApiError(401, MSG_UNAUTHORIZED),
            "rate_limit": ApiError(429, MSG_RATE_LIMIT, retry),
            "server_error": ApiError(
                profile["error_status"],
                HTTPStatus(profile["error_status"]).phrase,
                retry if profile["error_status"] == 503 else None,
            ),
        }
        self._api_error(errors[error], fmt)

    # ----- admin
    def _admin_body(self) -> dict:
        raw = self._read_body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        return data

    @staticmethod
    def _device_args(data: dict) -> tuple[str, str]:
        token, hwid = data.get("token"), data.get("hardwareId")
        if not isinstance(token, str) or not isinstance(hwid, str):
            raise ApiError(400, "token and hardwareId are required")
        return token, hwid

    def _admin(self, method: str, sub: str) -> None:
        sim = self.sim
        data = self._admin_body()
        if method == "GET" and sub == "/calls":
            self._json(200, sim.calls())
        elif method == "POST" and sub == "/reset":
            scope = data.get("scope", "all")
            if scope not in ("all", "calls"):
                raise ApiError(400, "scope must be all or calls")
            sim.reset(scope)
            self._json(200, {"reset": scope})
        elif method == "GET" and sub == "/profiles":
            with sim.lock:
                self._json(200, dict(sim.profiles))
        elif sub.startswith("/profiles/") and method in ("PUT", "DELETE", "GET"):
            self._admin_profile(method, unquote(sub[len("/profiles/") :]), data)
        elif method == "GET" and sub == "/devices":
            self._json(200, sim.list_devices())
        elif method == "POST" and sub == "/rotate":
            self._json(200, sim.rotate(*self._device_args(data)))
        elif method == "POST" and sub == "/expire":
            days = data.get("days")
            if isinstance(days, bool) or not isinstance(days, (int, float)):
                raise ApiError(400, "days (a number) is required")
            self._json(200, sim.expire(*self._device_args(data), days))
        else:
            raise ApiError(404, f"no admin endpoint {method} {ADMIN_PREFIX}{sub}")

    def _admin_profile(self, method: str, token: str, data: dict) -> None:
        """PUT, DELETE or GET one device profile by its token."""
        sim = self.sim
        if method == "PUT":
            try:
                self._json(200, sim.put_profile(token, data))
            except prof.ProfileError as exc:
                raise ApiError(400, str(exc)) from None
        elif method == "DELETE":
            if not sim.delete_profile(token):
                raise ApiError(404, f"no profile {token}")
            self._json(200, {"deleted": token})
        else:
            with sim.lock:
                profile = sim.profiles.get(token)
            if profile is None:
                raise ApiError(404, f"no profile {token}")
            self._json(200, profile)


class SimServer(ThreadingHTTPServer):
    """HTTPS server; the TLS handshake runs in the request thread so a slow client cannot block others."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, context: ssl.SSLContext, verbose: bool) -> None:
        self.context = context
        self.verbose = verbose
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


class SimHandle:
    """A running simulator: `.url`, `.admin`, `.ca_path`, `.endpoint_json`, `.calls()`, `.stop()`; a context manager."""

    def __init__(self, sim: Simulator, server: SimServer, thread: threading.Thread | None, endpoint_json: Path) -> None:
        self.sim = sim
        self.server = server
        self.thread = thread
        host, port = server.server_address[:2]
        base = f"https://{'localhost' if host == '::1' else host}:{port}"
        self.port = port
        self.url = base + CREDENTIALS_PATH
        self.admin = base + ADMIN_PREFIX
        self.ca_path = str(sim.pki.ca_path)
        self.endpoint_json = endpoint_json

    def calls(self) -> dict:
        return self.sim.calls()

    def client(self):
        return SimClient(self.endpoint_json)

    def stop(self) -> None:
        self.sim.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.endpoint_json.read_text()).get("pid") == os.getpid():
                self.endpoint_json.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(state_dir, profiles: dict | None = None, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
    """Bind, build TLS from the PKI, write `DIR/endpoint.json`; returns (SimHandle without thread, server)."""
    if not _is_loopback(host):
        raise ValueError(f"the simulator (and its unauthenticated admin API) binds only to loopback, not {host!r}")
    sim = Simulator(state_dir, profiles)
    cert, key = sim.pki.issue_server(tuple(dict.fromkeys((host, "127.0.0.1", "localhost"))))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    handler = type("BoundHandler", (Handler,), {"sim": sim})
    server_cls = SimServer
    if ":" in host:
        server_cls = type("SimServer6", (SimServer,), {"address_family": socket.AF_INET6})
    server = server_cls((host, port), handler, ctx, verbose)
    endpoint_json = sim.dir / "endpoint.json"
    handle = SimHandle(sim, server, None, endpoint_json)
    _atomic_json(
        endpoint_json, {"url": handle.url, "admin": handle.admin, "ca": handle.ca_path, "pid": os.getpid()}, 0o644
    )
    return handle


def run_in_thread(state_dir, profiles: dict | None = None, host: str = "127.0.0.1", port: int = 0, verbose=False):
    """Start the simulator in a background thread (for pytest); returns a SimHandle (call `.stop()`)."""
    handle = start(state_dir, profiles, host, port, verbose)
    thread = threading.Thread(target=handle.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    handle.thread = thread
    return handle


def serve(state_dir, profiles: dict | None = None, host: str = "127.0.0.1", port: int = 0, verbose=True) -> int:
    """Foreground server; SIGTERM/SIGINT stop it cleanly."""
    handle = start(state_dir, profiles, host, port, verbose)

    def _stop(signum, frame):
        # shutdown() waits for serve_forever, so run it outside the signal frame.
        threading.Thread(target=handle.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"pointperfect-sim: serving {handle.url} (admin {handle.admin}, CA {handle.ca_path})", flush=True)
    handle.server.serve_forever(poll_interval=0.2)
    handle.stop()
    print("pointperfect-sim: stopped", flush=True)
    return 0
