"""Timestamps as the node writes them: RFC 3339 UTC with microseconds."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> str:
    """The current time, e.g. ``2026-12-03T16:53:11.123456Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
