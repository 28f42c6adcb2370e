"""Python client for a running simulator: reads `DIR/endpoint.json`, talks HTTPS verified against the simulator CA."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Response:
    """One HTTP answer: status, headers (lower-case names), raw text."""

    status: int
    text: str
    headers: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.text)


class SimError(RuntimeError):
    """An admin call that did not answer 200."""


class SimClient:
    """Admin and ZTP calls against the simulator described by `endpoint_json_path`."""

    def __init__(self, endpoint_json_path, timeout: float = 10) -> None:
        info = json.loads(Path(endpoint_json_path).read_text())
        self.url = info["url"]
        self.admin = info["admin"].rstrip("/")
        self.ca = info["ca"]
        self.pid = info.get("pid")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=self.ca)

    def request(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout=None):
        """Raw HTTPS request; non-2xx answers are returned, not raised."""
        if not url.startswith("https://"):
            raise ValueError(f"not an https URL: {url}")
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - https only
        try:
            opened = urllib.request.urlopen(req, timeout=timeout or self.timeout, context=self.context)  # noqa: S310
            with opened as resp:
                return Response(resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.headers.items()})
        except urllib.error.HTTPError as err:
            return Response(err.code, err.read().decode(), {k.lower(): v for k, v in err.headers.items()})

    def _admin(self, method: str, path: str, data=None):
        body = None if data is None else json.dumps(data).encode()
        resp = self.request(method, self.admin + path, body, {"Content-Type": "application/json"})
        if resp.status != 200:
            raise SimError(f"{method} {path}: {resp.status} {resp.text}")
        return resp.json()

    # ----- the ZTP call, as a device would make it
    def ztp(self, token: str, hardware_id: str, given_name: str | None = None, tags=None, timeout=None) -> Response:
        payload = {"token": token, "hardwareId": hardware_id, "givenName": given_name or hardware_id}
        if tags is not None:
            payload["tags"] = tags
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return self.request("POST", self.url, json.dumps(payload).encode(), headers, timeout)

    # ----- admin API
    def calls(self) -> dict:
        return self._admin("GET", "/calls")

    def reset(self, scope: str = "all") -> dict:
        return self._admin("POST", "/reset", {"scope": scope})

    def profiles(self) -> dict:
        return self._admin("GET", "/profiles")

    def put_profile(self, token: str, profile: dict) -> dict:
        return self._admin("PUT", f"/profiles/{token}", profile)

    def delete_profile(self, token: str) -> dict:
        return self._admin("DELETE", f"/profiles/{token}")

    def devices(self) -> list:
        return self._admin("GET", "/devices")

    def rotate(self, token: str, hardware_id: str) -> dict:
        return self._admin("POST", "/rotate", {"token": token, "hardwareId": hardware_id})

    def expire(self, token: str, hardware_id: str, days: float) -> dict:
        return self._admin("POST", "/expire", {"token": token, "hardwareId": hardware_id, "days": days})
