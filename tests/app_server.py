"""Test helpers for the running app: a frozen copy of the shipped weights, `python app.py` in a subprocess
(its own process group, so a TensorBoard it starts goes down with it), Debian's Chromium through
Playwright, and polynomials the served model is known to solve."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Iterator

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.path.join(ROOT, "test-artifacts", "screenshots")  # git-ignored: every run writes here
DOCS_SCREENSHOTS = os.path.join(ROOT, "docs", "screenshots")  # the README's: refreshed only when asked
UPDATE_SCREENSHOTS = "UPDATE_SCREENSHOTS"  # UPDATE_SCREENSHOTS=1 python -m pytest tests/test_browser.py
STARTUP_TIMEOUT = 180  # seconds: importing torch + gradio on a busy 2-core machine is slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frozen_weights(dest_dir: str) -> str:
    """Copy weights/default.{safetensors,json} into dest_dir and return the stem. The shipped file may be
    rewritten by a training run at any time; the server and the test must read the same weights."""
    import engine
    src = engine.DEFAULT_CHECKPOINT
    if not os.path.exists(src + ".safetensors"):
        pytest.fail(f"no shipped weights at {src}.safetensors: the browser tests need the trained model")
    stem = os.path.join(dest_dir, "default")
    for ext in (".json", ".safetensors", ".examples.json"):  # the examples the page offers, too
        if ext == ".examples.json" and not os.path.exists(src + ext):
            continue
        shutil.copyfile(src + ext, stem + ext)
    return stem


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the app's process group (the app and any TensorBoard it started), then SIGKILL stragglers."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; make sure no child of the group is left either
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


@dataclass
class App:
    url: str  # http://127.0.0.1:<port>/
    proc: subprocess.Popen
    log_path: str  # everything the app printed

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def wait(self, timeout: float = STARTUP_TIMEOUT) -> "App":
        """Block until the app answers HTTP (it fails fast if the process dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with code {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        raise RuntimeError(f"app did not answer within {timeout} s:\n{self.log()[-3000:]}")


@contextlib.contextmanager
def running_app(checkpoint: str, profile_dir: str, args: tuple[str, ...] = (),
                env: dict[str, str] | None = None) -> Iterator[App]:
    """`python app.py` on a free port, started in the background (call .wait() before using it, and do
    other set-up meanwhile); stops it and its children afterwards. `args` and `env` add flags and variables."""
    port = free_port()
    log_path = os.path.join(profile_dir, os.pardir, f"app-{port}.log")
    # One torch thread, for the reason in conftest.py; the tests check behaviour, not speed.
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--checkpoint", checkpoint,
                                 "--profile-dir", profile_dir, *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        yield App(url, proc, log_path)
    finally:
        stop_group(proc)


@contextlib.contextmanager
def served_app(root, n_problems: int, args: tuple[str, ...] = ()) -> Iterator[SimpleNamespace]:
    """A frozen copy of the shipped weights served by `python app.py` under `root` (a pathlib directory),
    with n (2,2) problems that checkpoint verifies, found while the app boots. Gradio's files (the copies it
    serves, uploads) go to `cache_dir` under root, so a test can see everything the app writes."""
    checkpoint = frozen_weights(str(root))
    profile_dir, cache_dir = root / "profiles", root / "gradio-cache"
    profile_dir.mkdir()
    cache_dir.mkdir()
    with running_app(checkpoint, str(profile_dir), args, {"GRADIO_TEMP_DIR": str(cache_dir)}) as app:
        problems = solvable_problems(checkpoint, n_problems)
        app.wait()
        yield SimpleNamespace(app=app, url=app.url, profile_dir=str(profile_dir), cache_dir=str(cache_dir),
                              problems=problems)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A Playwright browser context on Debian's Chromium with a fresh profile directory."""
    from playwright.sync_api import sync_playwright
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as p:
        # headless=False: Playwright adds no headless switches of its own; --headless comes from our flags.
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=False,
                                                   args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            yield ctx
        finally:
            ctx.close()


def screenshot(page, name: str, element: str | None = None) -> str:
    """Full-page screenshot (or of one element) into test-artifacts/screenshots/<name>.png; copied to
    docs/screenshots/ for the README only when the environment sets UPDATE_SCREENSHOTS=1."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.join(SCREENSHOTS, f"{name}.png")
    if element is None:
        page.screenshot(path=path, full_page=True)
    else:
        page.locator(element).screenshot(path=path)
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        os.makedirs(DOCS_SCREENSHOTS, exist_ok=True)
        shutil.copyfile(path, os.path.join(DOCS_SCREENSHOTS, f"{name}.png"))
    return path


def solvable_problems(checkpoint: str, n: int, width: int = 10, pair: tuple[int, int] = (2, 2),
                      seed: int = 77) -> list[tuple]:
    """n (f, best answer) pairs of the given degree pair that this checkpoint verifies with beam search at
    `width` and the app's default preset, decoded here in-process as a reference."""
    import engine
    model, _ = engine.load_checkpoint(checkpoint)
    opts = engine.preset("fastest", decoder="beam", width=width)
    found = []
    for prob in engine.generate(*pair, 6 * n, seed, canonical=True):
        best = engine.best_answer(engine.solve(model, [prob.f], opts)[0])
        if best is not None and best.verified:
            found.append((prob.f, best))
        if len(found) == n:
            return found
    pytest.fail(f"the checkpoint verifies only {len(found)} of {6 * n} ({pair[0]},{pair[1]}) problems")
