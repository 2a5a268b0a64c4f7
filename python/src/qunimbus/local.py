"""A node started for you on this machine: the `qunimbus` binary serving
on a free loopback port from a temporary SQLite data dir, with tokens of
its own, stopped (and its data removed) by :meth:`LocalNode.stop`, when the
object is collected, at interpreter exit, and (on Linux) when the thread
that started it dies."""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from typing import Mapping, Optional

from .client import Client
from .errors import TransportError

#: The variable naming the `qunimbus` binary (else it is looked up on PATH).
BINARY_ENV = "QUNIMBUS_BIN"


def find_binary(binary: Optional[str] = None) -> str:
    """The node binary: ``binary``, ``$QUNIMBUS_BIN`` or ``qunimbus`` on PATH."""
    found = binary or os.environ.get(BINARY_ENV) or shutil.which("qunimbus")
    if not found or not os.path.exists(found):
        raise RuntimeError(
            "no qunimbus binary to start a local node: build it (cargo build --release, target/release/qunimbus), "
            f"put it on PATH or set {BINARY_ENV}, or give the URL of a running node"
        )
    return found


def _end_with_parent() -> None:
    """In the child, before exec: on Linux the node gets SIGTERM when the
    Python process that started it dies, so no node outlives its owner."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen, data_dir: str) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(data_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalNode:
    """Starts a node and waits until it is ready (``/readyz``)."""

    def __init__(
        self,
        binary: Optional[str] = None,
        config: Optional[Mapping[str, str]] = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.binary = find_binary(binary)
        self.admin_token = "adm_" + secrets.token_urlsafe(24)
        self.ingest_token = "ing_" + secrets.token_urlsafe(24)
        self.data_dir = tempfile.mkdtemp(prefix="qunimbus-local-")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        # Every QUNIMBUS_* variable is configuration to the node: pass only ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUNIMBUS_")}
        env.update(QUNIMBUS_ADMIN_TOKEN=self.admin_token, QUNIMBUS_INGEST_TOKEN=self.ingest_token)
        env.update(config or {})
        self.log_path = os.path.join(self.data_dir, "node.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [self.binary, "serve", "--data-dir", os.path.join(self.data_dir, "node"), "--listen", f"127.0.0.1:{port}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_end_with_parent,
            )
        # Stopped when this object goes away or the interpreter exits.
        self._finalizer = weakref.finalize(self, _stop, self.process, self.data_dir)
        self._wait_ready(ready_timeout)
        self.admin = Client(self.url, self.admin_token)
        self.ingest = Client(self.url, self.ingest_token)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.url + "/readyz", timeout=1).read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.log()
                    self.stop()
                    raise TransportError(f"the local node did not become ready:\n{log}") from None
                time.sleep(0.05)

    def log(self) -> str:
        """What the node wrote so far."""
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """Stops the node (SIGTERM, then waits) and removes its data dir."""
        self._finalizer()

    def __enter__(self) -> "LocalNode":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
