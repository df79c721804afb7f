"""PolyDecode Lab in the browser.

    python app.py [--host 127.0.0.1] [--port 7860] [--checkpoint weights/default] [--profile-dir profiles]
                  [--keep-runs 20] [--threads N]

The four tabs live in demo/ (one module each); this file composes them, queues and launches. What one
request may ask is capped (demo.lab.Limits); README's "Running it for others" says what and where files go.
"""
from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import replace

import gradio as gr

import engine
from demo import bench_tab, compare_tab, decompose_tab, profile_tab
from demo.lab import LabConfig, display_path, model_info

TITLE = "PolyDecode Lab"
DELETE_CACHE = (600, 3600)  # every 10 minutes, delete files Gradio copied to serve that are over an hour old
MAX_SESSIONS = 200  # sessions whose state (beam replay, <= ~1 MB each) the server keeps; the oldest go first
MAX_UPLOAD = "1kb"  # no component takes files; Gradio's upload route must not store anything sizeable


def build(lab: LabConfig = LabConfig()) -> gr.Blocks:
    # Each tab is a Blocks of its own, built outside the app's context and rendered into a Tab.
    tabs = [("Decompose", decompose_tab.build(lab)), ("Compare", compare_tab.build(lab)),
            ("Profile", profile_tab.build(lab)), ("Benchmark", bench_tab.build(lab))]
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as app:
        gr.Markdown(f"# {TITLE}\nWatch and measure how a small transformer decomposes polynomials: "
                    "f(a) = P(Q(a)), the model writes Q.")
        info = gr.Markdown(f"Model: `{display_path(lab.checkpoint)}`", elem_id="model-info")
        with gr.Tabs():
            for name, tab in tabs:
                with gr.Tab(name, id=name.lower()):
                    tab.render()
        app.load(lambda: model_info(lab.checkpoint), None, info, api_visibility="private")
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Serve the PolyDecode Lab web app.")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--profile-dir", default="profiles", help="where profiler runs are written and listed")
    ap.add_argument("--keep-runs", type=int, default=LabConfig().limits.max_recordings,
                    help="profiler runs kept in --profile-dir; older ones are deleted (default: %(default)s)")
    engine.add_runtime_args(ap, device=False)  # --threads, --checkpoint
    args = ap.parse_args(argv)
    args.checkpoint = args.checkpoint or engine.DEFAULT_CHECKPOINT
    engine.apply_runtime_args(ap, args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    for name in ("demo", "engine"):
        logging.getLogger(name).setLevel(logging.INFO)
    if args.keep_runs < 1:
        sys.exit("error: --keep-runs must be >= 1")
    lab = LabConfig(checkpoint=args.checkpoint, profile_dir=args.profile_dir, host=args.host,
                    limits=replace(LabConfig().limits, max_recordings=args.keep_runs))
    try:
        print(model_info(lab.checkpoint).replace("`", ""))
    except ValueError as e:
        sys.exit(f"error: cannot load the model: {e}")
    os.makedirs(lab.profile_dir, exist_ok=True)
    private_cache()
    # fastest's fused decode step is a C++ extension built on first use (about half a minute once, then cached):
    # build it while the page loads rather than in the first request.
    threading.Thread(target=engine.decoding.fused.available, name="build-fused-step", daemon=True).start()
    # SIGTERM -> SystemExit, so atexit handlers run (they stop a TensorBoard started from the page).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # No allowed_paths: the profile folder is never served as a whole; a trace is served in place, one file at
    # a time (profile_tab.Traces), anything else a handler returns from Gradio's copy of it. show_error: the handlers turn every error into
    # a one-line gr.Error; this makes the few Gradio raises itself (a malformed table) a message, not `null`.
    build(lab).queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port,
                                                         max_file_size=MAX_UPLOAD, show_error=True,
                                                         state_session_capacity=MAX_SESSIONS)


def private_cache() -> None:
    """Unless GRADIO_TEMP_DIR is set, the files this server serves are copied into a folder of its own,
    deleted at exit, instead of a /tmp/gradio shared with every other Gradio app and kept forever."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="polydecode-gradio-")
    os.environ["GRADIO_TEMP_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


if __name__ == "__main__":
    main()  # builds the app from the flags
else:
    demo = build()  # what hosting platforms and `gradio app.py` import
