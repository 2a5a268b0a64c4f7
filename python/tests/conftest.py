"""Fixtures: a real node (the `qunimbus` binary the cargo tests built) on a
free port with a temporary data dir. Without QUNIMBUS_BIN the node tests
fail, never skip."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from qunimbus import Client

ADMIN = "py-admin-token-0123456789"
INGEST = "py-ingest-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningNode:
    def __init__(self, url: str, process: subprocess.Popen, log: str) -> None:
        self.url = url
        self.process = process
        self.log = log
        self.admin = Client(url, ADMIN)
        self.ingest = Client(url, INGEST)
        self.anonymous = Client(url)


@pytest.fixture(scope="session")
def node():
    binary = os.environ.get("QUNIMBUS_BIN")
    assert binary and os.path.exists(binary), (
        f"QUNIMBUS_BIN must name the qunimbus binary (scripts/test sets it), got {binary!r}"
    )
    with tempfile.TemporaryDirectory(prefix="qunimbus-py-") as data:
        port = _free_port()
        env = dict(
            os.environ,
            QUNIMBUS_ADMIN_TOKEN=ADMIN,
            QUNIMBUS_INGEST_TOKEN=INGEST,
            QUNIMBUS_LEDGER__CHECKPOINT_INTERVAL_MS="50",
        )
        # Every QUNIMBUS_* variable is configuration to the node.
        del env["QUNIMBUS_BIN"]
        log_path = os.path.join(data, "node.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [binary, "serve", "--data-dir", os.path.join(data, "node"), "--listen", f"127.0.0.1:{port}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/readyz", timeout=1).read()
                break
            except OSError:
                assert process.poll() is None, open(log_path).read()
                assert time.monotonic() < deadline, "the node was not ready within 30 s:\n" + open(log_path).read()
                time.sleep(0.1)
        try:
            yield RunningNode(url, process, log_path)
        finally:
            process.terminate()
            process.wait(timeout=30)
