"""PolyDecode Lab in the browser.

    python app.py [--host 127.0.0.1] [--port 7860] [--checkpoint weights/default] [--profile-dir profiles]
                  [--threads N]

The four tabs live in demo/ (one module each); this file composes them, queues and launches.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import gradio as gr

import engine
from demo import bench_tab, compare_tab, decompose_tab, profile_tab
from demo.lab import LabConfig, display_path, model_info

TITLE = "PolyDecode Lab"


def build(lab: LabConfig = LabConfig()) -> gr.Blocks:
    # Each tab is a Blocks of its own, built outside the app's context and rendered into a Tab.
    tabs = [("Decompose", decompose_tab.build(lab)), ("Compare", compare_tab.build(lab)),
            ("Profile", profile_tab.build(lab)), ("Benchmark", bench_tab.build(lab))]
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\nWatch and measure how a small transformer decomposes polynomials: "
                    "f(a) = P(Q(a)), the model writes Q.")
        info = gr.Markdown(f"Model: `{display_path(lab.checkpoint)}`", elem_id="model-info")
        with gr.Tabs():
            for name, tab in tabs:
                with gr.Tab(name, id=name.lower()):
                    tab.render()
        app.load(lambda: model_info(lab.checkpoint), None, info, api_visibility="private")
    return app


demo = build()  # what hosting platforms import; `python app.py` builds its own from the flags


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Serve the PolyDecode Lab web app.")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--profile-dir", default="profiles", help="where profiler runs are written and listed")
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
    lab = LabConfig(checkpoint=args.checkpoint, profile_dir=args.profile_dir)
    try:
        print(model_info(lab.checkpoint).replace("`", ""))
    except ValueError as e:
        sys.exit(f"cannot load the model: {e}")
    os.makedirs(lab.profile_dir, exist_ok=True)
    # SIGTERM -> SystemExit, so atexit handlers run (they stop a TensorBoard started from the page).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = demo if lab == LabConfig() else build(lab)
    app.queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port,
                                                  allowed_paths=[os.path.abspath(lab.profile_dir)])


if __name__ == "__main__":
    main()
