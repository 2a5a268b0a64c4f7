"""Timestamps as the node writes them: RFC 3339 UTC with microseconds."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_us() -> int:
    """The current time in Unix microseconds."""
    return time.time_ns() // 1000


def rfc3339(us: int) -> str:
    """``us`` (Unix µs) as e.g. ``2026-12-03T16:53:11.123456Z``."""
    at = datetime.fromtimestamp(us // 1_000_000, timezone.utc).replace(microsecond=us % 1_000_000)
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def now() -> str:
    """The current time, e.g. ``2026-12-03T16:53:11.123456Z``."""
    return rfc3339(now_us())
