"""The Quantum Market Protocol activation of the seed, on a real node: the
named liquidity partners are registered on the node and connected to its
feed as real clients that acknowledge every valuation; latency and
throughput are what the node and the partners measured. A figure that was
not measured is ``None``, never a default.

With ``node_url=`` (or ``$QUNIMBUS_URL``) it drives that node, with
``admin_token=``/``ingest_token=`` (or ``$QUNIMBUS_ADMIN_TOKEN`` /
``$QUNIMBUS_INGEST_TOKEN``); with neither it starts a local node (the
``qunimbus`` binary, :class:`qunimbus.local.LocalNode`) on a temporary
SQLite data dir, stopped by :meth:`QMPActivation.close`.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from typing import Any, Iterable, Optional

from qunimbus import Client
from qunimbus.errors import Conflict
from qunimbus.local import LocalNode

from ._feed import FeedPartner
from ._time import now, rfc3339
from .valuation_engine import REFERENCE_COHERENCE_VARIANCE, REFERENCE_EPH_DELIVERED, REFERENCE_RUNTIME_HOURS

DEFAULT_PARTNERS = ["partner_americas", "partner_eu", "partner_apac"]
#: How long activate() waits for every partner's session, and an update for
#: its valuation to reach the partners, seconds.
CONNECT_TIMEOUT = 10.0
UPDATE_TIMEOUT = 10.0


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number greater than 0, got {value!r}")
    return float(value)


class QMPActivation:
    """Live market protocol with liquidity partners, measured end to end."""

    def __init__(
        self,
        liquidity_partners: Optional[Iterable[str]] = None,
        market_update_latency_target: float = 10.0,
        entanglement_throughput_target: float = 5e9,
        node_url: Optional[str] = None,
        admin_token: Optional[str] = None,
        ingest_token: Optional[str] = None,
    ) -> None:
        partners = list(liquidity_partners) if liquidity_partners else list(DEFAULT_PARTNERS)
        if not all(isinstance(p, str) and p.strip() for p in partners) or len(set(partners)) != len(partners):
            raise ValueError(f"liquidity_partners must be distinct non-empty names, got {partners!r}")
        self.liquidity_partners = partners
        #: Seconds, as the seed documents it.
        self.market_update_latency_target = _positive("market_update_latency_target", market_update_latency_target)
        self.entanglement_throughput_target = _positive("entanglement_throughput_target", entanglement_throughput_target)
        self.node_url = node_url or os.environ.get("QUNIMBUS_URL")
        self._admin_token = admin_token or os.environ.get("QUNIMBUS_ADMIN_TOKEN")
        self._ingest_token = ingest_token or os.environ.get("QUNIMBUS_INGEST_TOKEN")
        self.is_active = False
        self.activation_timestamp: Optional[str] = None
        self._local: Optional[LocalNode] = None
        self._admin: Optional[Client] = None
        self._ingest: Optional[Client] = None
        self._feeds: dict[str, FeedPartner] = {}

    # ---- the node ----------------------------------------------------------

    def _clients(self) -> tuple[Client, Client]:
        if self.node_url is None:
            self._local = LocalNode()
            self.node_url = self._local.url
            self._admin_token, self._ingest_token = self._local.admin_token, self._local.ingest_token
        if not self._admin_token:
            raise ValueError("driving a node needs its admin token: admin_token= or $QUNIMBUS_ADMIN_TOKEN")
        return Client(self.node_url, self._admin_token), Client(self.node_url, self._ingest_token)

    @property
    def local_node(self) -> Optional[LocalNode]:
        """The node started for this activation, if one was."""
        return self._local

    def _partner_key(self, admin: Client, name: str, region: str) -> str:
        try:
            return admin.add_partner(name, region)["api_key"]
        except Conflict:
            known = {p["name"]: p for p in admin.partners()["partners"]}
            partner = known[name]
            return admin.rotate_partner_key(partner["id"], "QMPActivation reconnects its partner")["secret"]

    @staticmethod
    def _region_for(name: str, regions: list[str]) -> str:
        lowered = name.lower()
        for region in regions:
            if lowered.endswith(region.lower()):
                return region
        return regions[0]

    # ---- the seed's API --------------------------------------------------------

    def activate(self, config: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Registers the partners, turns the feed on and connects each
        partner; returns what the node then reports (``config`` may map a
        partner name to its home region)."""
        admin, self._ingest = self._clients()
        self._admin = admin
        regions = [r["name"] for r in admin.regions()["regions"]]
        homes = dict(config or {})
        for name in self.liquidity_partners:
            if name in self._feeds and self._feeds[name].is_alive():
                continue
            key = self._partner_key(admin, name, homes.get(name) or self._region_for(name, regions))
            feed = FeedPartner(self.node_url, name, key)
            feed.start()
            self._feeds[name] = feed
        admin.activate_market()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        for feed in self._feeds.values():
            feed.connected.wait(max(0.0, deadline - time.monotonic()))
        self.is_active = True
        self.activation_timestamp = now()
        status = admin.market_status()
        return {
            "status": "active",
            "activation_time": self.activation_timestamp,
            "partners_connected": self._connected(status),
            "partners_failed": {n: f.error for n, f in self._feeds.items() if f.error},
            "latency_target_ms": self.market_update_latency_target * 1000.0,
            "throughput_target_eph": self.entanglement_throughput_target,
            "node_url": self.node_url,
            "local_node": self._local is not None,
        }

    def _connected(self, status: dict[str, Any]) -> int:
        names = {p.get("name") for p in status.get("connected", [])}
        return sum(1 for n in self.liquidity_partners if n in names)

    def deactivate(self) -> dict[str, Any]:
        """Turns the feed off and closes the partners' sessions."""
        disconnected = 0
        for feed in self._feeds.values():
            disconnected += int(feed.connected.is_set())
            feed.stop()
        self._feeds.clear()
        if self._admin is not None and self.is_active:
            self._admin.deactivate_market()
        self.is_active = False
        return {"status": "inactive", "deactivation_time": now(), "partners_disconnected": disconnected}

    def close(self) -> None:
        """Deactivates and stops the local node, if one was started."""
        if self.is_active:
            self.deactivate()
        if self._local is not None:
            self._local.stop()
            self._local = None

    def __enter__(self) -> "QMPActivation":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _status(self) -> Optional[dict[str, Any]]:
        return self._admin.market_status() if self._admin is not None else None

    def get_market_feed(self) -> dict[str, Any]:
        """Each partner's session as the node reports it, with its measured
        p99 latency (receipt to ack) and the last valuation it received."""
        status = self._status() or {}
        connected = {p.get("name") for p in status.get("connected", [])}
        per_partner = (status.get("latency") or {}).get("per_partner", {})
        feed = {}
        for name in self.liquidity_partners:
            client = self._feeds.get(name)
            last = client.last_update if client else None
            feed[name] = {
                "status": "connected" if name in connected else "disconnected",
                "latency_ms": (per_partner.get(name) or {}).get("p99_ms"),
                "messages_received": client.received if client else 0,
                "last_update": None if last is None else rfc3339(last),
            }
        return {"is_active": self.is_active, "market_feed": feed, "timestamp": now()}

    def update_price_metrics(
        self,
        eta_ent: float,
        phi_qevf: float,
        coherence_variance: float = REFERENCE_COHERENCE_VARIANCE,
        runtime_hours: float = REFERENCE_RUNTIME_HOURS,
        eph_delivered: float = REFERENCE_EPH_DELIVERED,
        region: Optional[str] = None,
    ) -> dict[str, Any]:
        """Publishes a price update: a run at ``eta_ent`` is valued by the
        node and pushed to every connected partner. ``update_latency_ms`` is
        measured from sending the run to the last partner receiving its
        valuation (``None`` if none did); ``market_value`` is ``phi_qevf``
        at the node's price multiplier for ``eta_ent``."""
        phi = float(phi_qevf)
        if not math.isfinite(phi) or phi < 0:
            raise ValueError(f"phi_qevf must be a finite number of at least 0, got {phi_qevf!r}")
        if not self.is_active:
            raise RuntimeError("activate() first: price updates go to connected partners")
        run_id = f"qmp-{uuid.uuid4()}"
        run = {"run_id": run_id, "region": region or self._admin.regions()["regions"][0]["name"],
               "eta_ent": eta_ent, "coherence_variance": coherence_variance,
               "runtime_hours": runtime_hours, "eph_delivered": eph_delivered}
        feeds = [f for f in self._feeds.values() if f.connected.is_set()]
        for feed in feeds:
            feed.watch(run_id)
        sent = time.monotonic()
        valuation = self._ingest.ingest(run)
        arrivals = [a for a in (f.arrival(run_id, UPDATE_TIMEOUT) for f in feeds) if a is not None]
        latency = (max(arrivals) - sent) * 1000.0 if arrivals else None
        return {
            "eta_ent": eta_ent,
            "phi_qevf": phi,
            "price_multiplier": valuation["price_multiplier"],
            "market_value": phi * valuation["price_multiplier"],
            "node_phi_qevf": valuation["phi_qevf"],
            "run_id": run_id,
            "update_latency_ms": latency,
            "partners_updated": len(arrivals),
            "timestamp": now(),
        }

    def get_metrics(self) -> dict[str, Any]:
        """The node's measured feed latency (p99 over its window) and EPH
        throughput against the targets; ``None`` where nothing was measured."""
        status = self._status() or {}
        latency = ((status.get("latency") or {}).get("p99_ms") or {}).get("value")
        throughput = (status.get("eph_throughput_per_hour") or {}).get("value")
        target_ms = self.market_update_latency_target * 1000.0
        return {
            "is_active": self.is_active,
            "market_update_latency_ms": latency,
            "market_update_latency_target_ms": target_ms,
            "latency_within_target": None if latency is None else latency < target_ms,
            "entanglement_throughput_eph": throughput,
            "entanglement_throughput_target_eph": self.entanglement_throughput_target,
            "throughput_within_target": None if throughput is None else throughput > self.entanglement_throughput_target,
            "partners_active": self._connected(status) if status else 0,
            "timestamp": now(),
        }
