"""A client of a QuNimbus node's HTTP API (SPEC §11), standard library only.

Every method returns the node's JSON answer as plain Python values and
raises a typed :mod:`qunimbus.errors` exception for an error answer.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterable, Mapping, Optional

from . import _native
from .errors import ApiError, TransportError, error_for

Json = Any


class Client:
    """A node at ``url`` (e.g. ``http://127.0.0.1:8080``), with ``token``
    (admin, ingest or a client token) sent as the bearer token."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"url must be an http:// or https:// URL of a node, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # ---- transport ---------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Optional[Json] = None,
        query: Optional[Mapping[str, Any]] = None,
        text: bool = False,
    ) -> Json:
        url = self.url + path
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as e:
            raise self._error(e) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
            raise TransportError(f"{method} {url}: {getattr(e, 'reason', e)}") from None
        if text:
            return payload.decode()
        return json.loads(payload) if payload else None

    @staticmethod
    def _error(e: urllib.error.HTTPError) -> ApiError:
        raw = e.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        retry = e.headers.get("retry-after")
        return error_for(e.code, body, float(retry) if retry and retry.isdigit() else None)

    # ---- telemetry and valuations -------------------------------------------

    def ingest(self, run: Mapping[str, Any]) -> Json:
        """``POST /v1/telemetry``: one run (ingest token); its valuation."""
        return self._request("POST", "/v1/telemetry", dict(run))

    def ingest_batch(self, runs: Iterable[Mapping[str, Any]]) -> Json:
        """``POST /v1/telemetry/batch``: stored whole or not at all."""
        return self._request("POST", "/v1/telemetry/batch", [dict(r) for r in runs])

    def quote(self, **metrics: float) -> Json:
        """``POST /v1/valuation/quote``: prices without recording."""
        return self._request("POST", "/v1/valuation/quote", metrics)

    def valuations(self, **query: Any) -> Json:
        """``GET /v1/valuations`` (``region``, ``limit``, ``before`` …)."""
        return self._request("GET", "/v1/valuations", query=query)

    def valuation(self, run_id: str) -> Json:
        """``GET /v1/valuations/{run_id}``."""
        return self._request("GET", f"/v1/valuations/{urllib.parse.quote(run_id, safe='')}")

    def stats(self) -> Json:
        """``GET /v1/valuations/stats``."""
        return self._request("GET", "/v1/valuations/stats")

    # ---- ledger --------------------------------------------------------------

    def ledger(self) -> Json:
        """``GET /v1/ledger``: the summary."""
        return self._request("GET", "/v1/ledger")

    def blocks(self, start: int = 0, limit: int = 100) -> Json:
        """``GET /v1/ledger/blocks`` from ``start``."""
        return self._request("GET", "/v1/ledger/blocks", query={"from": start, "limit": limit})

    def block(self, index: int) -> Json:
        """``GET /v1/ledger/blocks/{index}``."""
        return self._request("GET", f"/v1/ledger/blocks/{int(index)}")

    def checkpoint(self) -> str:
        """``GET /v1/ledger/checkpoint``: the newest signed note."""
        return self._request("GET", "/v1/ledger/checkpoint", text=True)

    def public_key(self) -> str:
        """``GET /v1/ledger/public-key``: the note verifier key."""
        return self._request("GET", "/v1/ledger/public-key", text=True).strip()

    def inclusion_proof(self, index: int, tree_size: Optional[int] = None) -> Json:
        """``GET /v1/ledger/proof/inclusion``."""
        query = {"index": index, "tree_size": tree_size}
        return self._request("GET", "/v1/ledger/proof/inclusion", query=query)

    def consistency_proof(self, first: int, second: Optional[int] = None) -> Json:
        """``GET /v1/ledger/proof/consistency``."""
        query = {"first": first, "second": second}
        return self._request("GET", "/v1/ledger/proof/consistency", query=query)

    def verify(self) -> Json:
        """``GET /v1/ledger/verify``: the node verifies its whole ledger."""
        return self._request("GET", "/v1/ledger/verify")

    def prove_block(self, index: int, verifier_key: Optional[str] = None) -> dict[str, Any]:
        """Checks here, not on the node, that block ``index`` is in the log:
        its hash recomputed, its inclusion proof against the newest signed
        checkpoint, that checkpoint's signature against ``verifier_key``
        (default: the key the node publishes; give the one you hold).
        Returns the verified checkpoint; raises ``VerificationError``."""
        key = verifier_key or self.public_key()
        checkpoint = _native.verify_checkpoint(self.checkpoint(), key)
        block = self.block(index)
        text = json.dumps(block)
        if _native.block_hash(text) != block["hash"]:
            raise _native.VerificationError(f"block {index}: its hash does not match its content")
        proof = self.inclusion_proof(index, checkpoint["size"])
        _native.verify_inclusion(
            index,
            checkpoint["size"],
            _native.leaf_hash(text),
            [base64.b64decode(h) for h in proof["hashes"]],
            checkpoint["root"],
        )
        return checkpoint

    # ---- trust kernel, market, agent ----------------------------------------

    def regions(self) -> Json:
        """``GET /v1/regions``."""
        return self._request("GET", "/v1/regions")

    def region(self, name: str) -> Json:
        """``GET /v1/regions/{region}``."""
        return self._request("GET", f"/v1/regions/{urllib.parse.quote(name, safe='')}")

    def set_region(self, name: str, **change: Any) -> Json:
        """``PUT /v1/regions/{region}`` (admin): status or trust override, with ``reason``."""
        return self._request("PUT", f"/v1/regions/{urllib.parse.quote(name, safe='')}", change)

    def mesh(self) -> Json:
        """``GET /v1/mesh``."""
        return self._request("GET", "/v1/mesh")

    def rollouts(self) -> Json:
        """``GET /v1/rollouts``."""
        return self._request("GET", "/v1/rollouts")

    def start_rollout(self, version: str, **options: Any) -> Json:
        """``POST /v1/rollouts`` (admin)."""
        return self._request("POST", "/v1/rollouts", {"version": version, **options})

    def compliance(self) -> Json:
        """``GET /v1/compliance``: every framework's verdict from evidence."""
        return self._request("GET", "/v1/compliance")

    def add_partner(self, name: str, region: str) -> Json:
        """``POST /v1/partners`` (admin): its API key is in the answer, once."""
        return self._request("POST", "/v1/partners", {"name": name, "region": region})

    def partners(self) -> Json:
        """``GET /v1/partners`` (admin)."""
        return self._request("GET", "/v1/partners")

    def rotate_partner_key(self, partner_id: str, reason: str, grace_secs: int = 0) -> Json:
        """``POST /v1/partners/{id}/rotate-key`` (admin): the new key is ``secret``."""
        body = {"grace_secs": grace_secs, "reason": reason}
        return self._request("POST", f"/v1/partners/{urllib.parse.quote(partner_id, safe='')}/rotate-key", body)

    def activate_market(self) -> Json:
        """``POST /v1/market/activate`` (admin): the feed publishes."""
        return self._request("POST", "/v1/market/activate", {})

    def deactivate_market(self) -> Json:
        """``POST /v1/market/deactivate`` (admin)."""
        return self._request("POST", "/v1/market/deactivate", {})

    def market_status(self) -> Json:
        """``GET /v1/market/status``: measured latency, throughput, partners."""
        return self._request("GET", "/v1/market/status")

    def agent(self) -> Json:
        """``GET /v1/agent``: the trading agent's state."""
        return self._request("GET", "/v1/agent")

    def agent_command(self, command: str, reason: str) -> Json:
        """``POST /v1/agent/{command}`` (admin): pause, resume, flatten, kill, reset."""
        return self._request("POST", f"/v1/agent/{urllib.parse.quote(command, safe='')}", {"reason": reason})

    def backup(self, **options: bool) -> Json:
        """``POST /v1/admin/backup`` (admin): a verified backup on the node's disk."""
        return self._request("POST", "/v1/admin/backup", options or None)
