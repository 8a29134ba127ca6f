"""The one HTTP client for OPA's REST API: the engine's pushes and queries, the sidecar's checks.

One `requests` session per server, with its bearer token and TLS verification (a CA file, or the
system's CAs); failures become `PolicyUnavailable` (OPA unreachable, 502-504) or `PolicyError`
(anything else), in plain words.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from coopfed.node.policy.errors import PolicyError, PolicyUnavailable


class OpaHttp:
    """OPA's REST API at `url` (scheme, host and port only)."""

    def __init__(
        self, url: str, *, token: str = "", ca_file: str = "", timeout: float = 2.0, retries: int = 1
    ) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # a port that is not a number
            port = 0
        if parts.scheme not in ("http", "https") or not parts.hostname or not port:
            raise PolicyError(f"not an OPA server URL: {url!r}")
        if ca_file and parts.scheme != "https":
            raise PolicyError("opa_ca_file is set but the OPA URL is not https")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        # Per request: a session's verify loses to $REQUESTS_CA_BUNDLE, a request's does not.
        self._verify: str | bool = ca_file or True  # a CA file, or the system's
        # 500 and 504 may be passing; the last answer is kept so its message can be shown
        retry = Retry(
            total=retries, backoff_factor=0.3, status_forcelist=(500, 502, 504), raise_on_status=False
        )
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, HTTPAdapter(max_retries=retry))

    def get(self, path: str) -> Any:
        return self._send("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._send("POST", path, json=body)

    def put(self, path: str, body: Any) -> None:
        self._send("PUT", path, json=body)

    def put_policy(self, policy_id: str, source: str) -> None:
        """Add or replace one Rego module; a module that does not compile is refused."""
        self._send(
            "PUT",
            f"v1/policies/{policy_id}",
            data=source.encode("utf-8"),
            headers={"Content-Type": "text/plain"},
        )

    def delete(self, path: str) -> None:
        self._send("DELETE", path)

    def probe(self, path: str, timeout: float = 1.0) -> bytes | None:
        """The body of a 200 answer, else None (refused, timed out, another status): for polling."""
        try:
            response = self._session.get(f"{self.url}/{path}", timeout=timeout, verify=self._verify)
        except requests.RequestException:
            return None
        return response.content if response.status_code == 200 else None

    def close(self) -> None:
        self._session.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._session.request(
                method, f"{self.url}/{path}", timeout=self.timeout, verify=self._verify, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise PolicyUnavailable(f"OPA is unreachable: {exc.__class__.__name__}") from exc
        except requests.RequestException as exc:
            raise PolicyError(f"OPA request failed: {exc}") from exc
        except ValueError as exc:  # input that cannot be encoded
            raise PolicyError(f"OPA exchange failed: {exc}") from exc
        status = response.status_code
        if status in (502, 503, 504):
            raise PolicyUnavailable(f"OPA answered {status}: {_message(response)}")
        if 400 <= status < 500:
            raise PolicyError(f"OPA refused ({status}): {_message(response)}")
        if status >= 300:
            raise PolicyError(f"OPA answered {status}: {_message(response)}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise PolicyError(f"OPA exchange failed: {exc}") from exc


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", body))[:500] if isinstance(body, dict) else str(body)[:500]
