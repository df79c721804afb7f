"""TensorBoard on the profiles folder: started on demand, one per app process, reused, stopped at exit.

It binds the app's own address (--host), so where the app is reachable, so is TensorBoard; the link the page
shows names the host the browser used when the app listens on every address (0.0.0.0)."""
from __future__ import annotations

import atexit
import logging
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

PLUGIN_PATH = "#pytorch_profiler"  # the PyTorch Profiler plugin's page in TensorBoard
ANY_ADDRESS = ("0.0.0.0", "::", "")  # bind addresses that mean "every interface"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _local(host: str) -> str:
    """The address this process reaches a server bound to `host` at."""
    return "127.0.0.1" if host in ANY_ADDRESS else host


def link_host(bind_host: str, host_header: str | None) -> str:
    """The host part of a link to a server bound to bind_host, as seen from the browser whose request carried
    `Host: host_header` (e.g. "lab.example:7860" or "[::1]:7860")."""
    if bind_host not in ANY_ADDRESS:
        return f"[{bind_host}]" if ":" in bind_host else bind_host
    if not host_header:
        return "127.0.0.1"
    if host_header.startswith("["):  # IPv6 literal
        return host_header[:host_header.index("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class TensorBoard:
    """`tensorboard --logdir <logdir> --host <host> --port <free>` as a child process."""

    def __init__(self, logdir: str, host: str = "127.0.0.1"):
        self.logdir = logdir
        self.host = host
        self._lock = threading.Lock()  # two clicks at once must not start two servers
        self._proc: subprocess.Popen | None = None
        self._port: int | None = None
        self._stderr = None

    @property
    def url(self) -> str | None:
        """The base URL this process reaches the server at while it runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return f"http://{_local(self.host)}:{self._port}/"

    def link(self, host_header: str | None = None) -> str | None:
        """The base URL for a browser whose request carried `Host: host_header`, while the server runs."""
        if self.url is None:
            return None
        return f"http://{link_host(self.host, host_header)}:{self._port}/"

    def start(self, timeout: float = 90.0) -> str:
        """Start TensorBoard unless it already runs; wait until it answers; return its URL."""
        with self._lock:
            if self.url is not None:
                return self.url
            self._port = free_port(_local(self.host) if self.host in ANY_ADDRESS else self.host)
            cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", self.logdir, "--host", self.host,
                   "--port", str(self._port)]
            self._stderr = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr)
            atexit.register(self.stop)
            log.info("starting TensorBoard on port %d (pid %d)", self._port, self._proc.pid)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"TensorBoard exited with code {self._proc.returncode}: {self._tail()}")
                if _responds(f"http://{_local(self.host)}:{self._port}/data/logdir"):
                    return self.url
                time.sleep(0.5)
            self._kill()
            raise RuntimeError(f"TensorBoard did not answer within {timeout:.0f} s: {self._tail()}")

    def _tail(self, n: int = 600) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-n:].strip()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Stop the server if this object started it."""
        with self._lock:
            self._kill()
