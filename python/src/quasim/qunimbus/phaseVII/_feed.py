"""A liquidity partner on a node's feed: a real client of the SSE stream
(`GET /v1/market/stream`) that acknowledges every valuation
(`POST /v1/market/ack`), so the node measures its receipt-to-ack latency,
and notes when each run reached it."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Optional


class FeedPartner(threading.Thread):
    """One partner's session, in a thread of its own."""

    def __init__(self, url: str, name: str, api_key: str) -> None:
        super().__init__(name=f"qmp-{name}", daemon=True)
        self.url = url
        self.partner = name
        self.api_key = api_key
        self.connected = threading.Event()
        self.error: Optional[str] = None
        self.received = 0
        #: Unix µs of the newest valuation received.
        self.last_update: Optional[int] = None
        self._watched: set[str] = set()
        self._arrivals: dict[str, float] = {}
        self._arrived = threading.Condition()
        self._stopping = threading.Event()
        self._connection: Optional[http.client.HTTPConnection] = None

    def run(self) -> None:
        parsed = urllib.parse.urlparse(self.url)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=None)
        self._connection = connection
        try:
            connection.request("GET", "/v1/market/stream", headers={"authorization": f"Bearer {self.api_key}"})
            response = connection.getresponse()
            if response.status != 200:
                self.error = f"{response.status} {response.read(500).decode(errors='replace')}"
                return
            self.connected.set()
            self._read(response)
        except (OSError, http.client.HTTPException) as e:
            if not self._stopping.is_set():
                self.error = str(e)
        finally:
            self.connected.clear()
            connection.close()

    def _read(self, response: http.client.HTTPResponse) -> None:
        event, data = None, []
        while not self._stopping.is_set():
            line = response.fp.readline()
            if not line:
                return
            text = line.decode().rstrip("\r\n")
            if text.startswith("event:"):
                event = text[6:].strip()
            elif text.startswith("data:"):
                data.append(text[5:].strip())
            elif text == "" and data:
                self._on(event, json.loads("\n".join(data)))
                event, data = None, []

    def _on(self, event: Optional[str], message: dict[str, Any]) -> None:
        if event != "valuation" and message.get("type") != "valuation":
            return
        arrived = time.monotonic()
        self._ack(message["seq"])
        with self._arrived:
            self.received += 1
            self.last_update = time.time_ns() // 1000
            run_id = message.get("run_id")
            if run_id in self._watched:
                self._watched.discard(run_id)
                self._arrivals[run_id] = arrived
            self._arrived.notify_all()

    def _ack(self, seq: int) -> None:
        request = urllib.request.Request(
            self.url + "/v1/market/ack",
            data=json.dumps({"type": "ack", "seq": seq}).encode(),
            method="POST",
            headers={"authorization": f"Bearer {self.api_key}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def watch(self, run_id: str) -> None:
        """Notes the arrival of ``run_id``'s valuation (call before sending it)."""
        with self._arrived:
            self._watched.add(run_id)

    def arrival(self, run_id: str, timeout: float) -> Optional[float]:
        """When (monotonic) the watched valuation of ``run_id`` reached this
        partner, waiting up to ``timeout``; ``None`` if it did not."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while run_id not in self._arrivals:
                left = deadline - time.monotonic()
                if left <= 0 or not self.is_alive():
                    self._watched.discard(run_id)
                    return None
                self._arrived.wait(left)
            return self._arrivals.pop(run_id)

    def stop(self) -> None:
        self._stopping.set()
        if self._connection is not None and self._connection.sock is not None:
            try:
                self._connection.sock.shutdown(2)
            except OSError:
                pass
        self.join(timeout=10)
