"""Fixtures: a real node (the `qunimbus` binary the cargo tests built, named
by QUNIMBUS_BIN) started by the package's own LocalNode. Without the binary
the node tests fail, never skip."""

from __future__ import annotations

import os

import pytest

from qunimbus import Client
from qunimbus.local import BINARY_ENV, LocalNode


@pytest.fixture(scope="session")
def node():
    binary = os.environ.get(BINARY_ENV)
    assert binary and os.path.exists(binary), (
        f"{BINARY_ENV} must name the qunimbus binary (scripts/test sets it), got {binary!r}"
    )
    local = LocalNode(binary, config={"QUNIMBUS_LEDGER__CHECKPOINT_INTERVAL_MS": "50"})
    local.anonymous = Client(local.url)
    try:
        yield local
    finally:
        local.stop()
