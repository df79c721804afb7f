"""Profile: record a torch.profiler trace of one decode, read its phases, steps and top operators, list
and download the recordings, and open them in TensorBoard."""
from __future__ import annotations

import functools
import os
import threading
import time

import gradio as gr

import engine

from . import figures, jobs
from .controls import option_controls, panel_options
from .lab import LabConfig, MODEL_QUEUE, bind, example_problems, user_errors
from .tensorboard import ANY_ADDRESS, PLUGIN_PATH, TensorBoard

RUN_HEADERS = ["run", "recorded (UTC)", "polynomial", "decoder", "total ms", "trace"]
PHASE_HEADERS = ["phase", "ms", "share", "calls"]
ACTION = "Recording a profile"
TAB = "profile"
IDLE = "Ready: press **Record profile**. Progress and the time so far show here; **Stop** ends a recording."
TRACE_NOTE = """**Opening a trace elsewhere.** The trace view above works offline. The downloaded file
(`<run>.pt.trace.json`) opens in [ui.perfetto.dev](https://ui.perfetto.dev) (Perfetto: **needs internet** to load
the page; the trace itself stays in the browser) or in `chrome://tracing`. The ranges `prefill`, `decode_step`,
`cache_clone` / `cache_reorder`, `beam_select` and `verify` mark the phases, and `ProfilerStep#k` marks decode
step k. **TensorBoard's profiler views need internet:** the PyTorch Profiler plugin's pages load their charts
and components from CDNs, so without internet Overview, Operator and Trace never finish loading."""


def run_rows(profile_dir: str) -> list[list]:
    rows = []
    for r in engine.list_runs(profile_dir):
        s = r["summary"] or {}
        opts = s.get("options", {})
        decoder = opts.get("decoder", "")
        if decoder == "beam":
            decoder += f" {opts.get('width', '')}"
        rows.append([r["name"], r["time"], s.get("polynomial", ""), decoder, s.get("total_ms", ""),
                     os.path.basename(r["trace"]) if r["trace"] else "(none)"])
    return rows


def runs_view(profile_dir: str, selected: str | None = None):
    """The recorded-runs table and the run picker (keeping `selected` when it still exists)."""
    rows = run_rows(profile_dir)
    names = [r[0] for r in rows]
    value = selected if selected in names else (names[0] if names else None)
    return rows, gr.update(choices=names, value=value)


def summary_markdown(s: dict) -> str:
    answer = s.get("answer") or {}
    verdict = "✓ verified" if answer.get("verified") else f"✗ {answer.get('reason') or 'not verified'}"
    machine = s.get("machine", {})
    return (f"**{s.get('name', '')}** · f = {s.get('polynomial', '')} · "
            f"{s.get('prompt_tokens', '?')} prompt tokens\n\n"
            f"Recorded {s.get('total_ms', 0):.1f} ms (decoder's own timing {s.get('decoder_total_ms', 0):.1f} ms, "
            f"prefill {s.get('prefill_ms', 0):.1f} ms, peak cache {s.get('cache_bytes', 0) / 1024:.0f} KiB, "
            f"process peak {s.get('peak_rss_bytes', 0) / 2**20:.0f} MiB) on "
            f"{machine.get('cpu', '?')}, torch {machine.get('torch', '?')}\n\n"
            f"Answer: {prefix_as_math(answer.get('q') or '')} {verdict} · trace `{s.get('trace')}`")


def prefix_as_math(prefix: str) -> str:
    """Q = 3a² + a for seed prefix tokens that parse, else the tokens as code."""
    if not prefix:
        return "(no answer)"
    try:
        return f"Q = {engine.to_unicode(engine.from_prefix(prefix))}"
    except ValueError:
        return f"`{prefix}`"


def phase_rows(s: dict) -> list[list]:
    return [[p, v["ms"], f"{v.get('share', 0) * 100:.1f}%", v.get("calls", 0)] for p, v in s.get("phases", {}).items()]


def trace_figure(trace: str | None):
    """The in-app view of a recorded trace file (a placeholder when there is none or it cannot be read)."""
    if not trace:
        return figures.trace_view({})
    try:
        return figures.trace_view(engine.read_timeline(trace))
    except (OSError, ValueError) as e:  # pruned meanwhile, or not a trace
        return figures.trace_view({}, empty=f"The trace cannot be read: {e}")


def show_summary(s: dict | None, trace: str | None = None):
    """(markdown, phase figure, phase table, timeline figure, top-operators figure, trace view) for a
    summary and its trace file."""
    if not s:
        return "No summary for this run.", figures.profile_phases({}), [], figures.step_timeline({}), \
            figures.top_operators({}), trace_figure(trace)
    return (summary_markdown(s), figures.profile_phases(s), phase_rows(s), figures.step_timeline(s),
            figures.top_operators(s), trace_figure(trace))


def find_run(profile_dir: str, name: str | None) -> dict | None:
    return next((r for r in engine.list_runs(profile_dir) if r["name"] == name), None)


class Traces:
    """The traces behind the download button, served straight from the profile folder.

    Gradio copies every file a handler returns into its cache and keeps the copy (every trace ever shown
    stayed on disk, downloadable after its run was pruned), unless the file is static. Each trace is made
    static on its own, never the folder: a pruned run's trace is then simply gone, and nothing else in the
    profile folder is served. One path per distinct recording is remembered for the server's lifetime."""

    def __init__(self):
        self._lock = threading.Lock()
        self._served: set[str] = set()

    def serve(self, trace: str | None) -> str | None:
        if trace is not None:
            with self._lock:
                if trace not in self._served:
                    gr.set_static_paths([trace])
                    self._served.add(trace)
        return trace


def select_run(profile_dir: str, traces: Traces, name: str | None):
    """The picked run's charts and its trace behind the download button."""
    run = find_run(profile_dir, name)
    trace = traces.serve(run["trace"] if run else None)
    return (*show_summary(run["summary"] if run else None, trace),
            gr.update(value=trace, interactive=trace is not None))


def record(lab: LabConfig, traces: Traces, text: str, name: str = "", request: gr.Request = None, **panel):
    """Decode once under the profiler into the profiles folder (at most limits.max_recordings kept: the
    oldest go) in a cancellable job; show the result and refresh the list. `panel` holds the options panel's
    values by name (controls.PANEL; missing ones keep the preset's), checked here as sent. Yields (summary,
    phase chart, phase table, timeline, top operators, trace view, runs, picker, download, progress line);
    a stopped recording leaves no run folder behind."""
    skip = gr.skip()
    waiting = (skip,) * 9
    t0 = time.monotonic()
    yield waiting + (jobs.running_line(ACTION, None, 0.0),)
    with user_errors("Profile"):
        try:
            f = engine.parse_polynomial(text if isinstance(text, str) else "")
            opts = panel_options(**panel)
            lab.limits.check_decode(opts)
        except ValueError as e:
            yield waiting + (jobs.rejected_line(ACTION, e),)
            raise
        run_name = name.strip() if isinstance(name, str) else ""

        def work(check, report):
            report(0.0, "warm-up decode, then the recorded one")
            return engine.profile_run(lab.model(), f, opts, out_dir=lab.profile_dir, name=run_name or None,
                                      keep=lab.limits.max_recordings, check=check)

        try:
            summary = yield from jobs.run(ACTION, work, status=lambda line: waiting + (line,),
                                          stop_key=jobs.session_key(request, TAB))
        except jobs.Stopped:
            return
        rows, picker = runs_view(lab.profile_dir, summary["name"])
        run = find_run(lab.profile_dir, summary["name"])
        trace = traces.serve(run["trace"] if run else None)
        yield (*show_summary(summary, trace), rows, picker, gr.update(value=trace, interactive=trace is not None),
               jobs.done_line(ACTION, time.monotonic() - t0))


def start_tensorboard(board: TensorBoard, request: gr.Request = None) -> str:
    with user_errors("TensorBoard"):
        board.start()
    url = board.link(request.headers.get("host") if request is not None else None)
    where = "every address" if board.host in ANY_ADDRESS else board.host
    return (f"TensorBoard is running: [{url}{PLUGIN_PATH}]({url}{PLUGIN_PATH}) (PyTorch Profiler plugin, "
            f"logdir `{board.logdir}`; it listens on {where}, like the app; new runs appear within about 10 s). "
            f"Its profiler pages load charts from CDNs: **they need internet**; the trace view above does not.")


def build(lab: LabConfig | None = None) -> gr.Blocks:
    lab = lab or LabConfig()
    board = TensorBoard(lab.profile_dir, lab.host)
    with gr.Blocks(title="Profile") as tab:
        gr.Markdown(f"Record one decode under `torch.profiler`. Each recording is a run folder in "
                    f"`{lab.profile_dir}/` with a TensorBoard trace and a phase summary.")
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(example_problems(lab.checkpoint)[0][1], label="f(a)", elem_id="profile-input")
                name = gr.Textbox(label="Run name (optional)", placeholder="e.g. beam10-static", elem_id="profile-name")
                with gr.Row():
                    run = gr.Button("Record profile", variant="primary", elem_id="profile-run", scale=3)
                    stop = gr.Button("Stop", variant="stop", elem_id="profile-stop", scale=1)
                status = gr.Markdown(IDLE, elem_id="profile-progress")
                summary = gr.Markdown(elem_id="profile-summary")
            with gr.Column(scale=2):
                controls = option_controls("profile")
        with gr.Row():
            phase_fig = gr.Plot(figures.profile_phases({}), label="Phases", elem_id="profile-phases")
            phase_table = gr.Dataframe(headers=PHASE_HEADERS, interactive=False, label="Phase table")
        timeline = gr.Plot(figures.step_timeline({}), label="Per-step timeline", elem_id="profile-timeline")
        top_ops = gr.Plot(figures.top_operators({}), label="Top operators", elem_id="profile-top-ops")
        trace_view = gr.Plot(figures.trace_view({}), label="Trace view (works offline)", elem_id="profile-trace")
        gr.Markdown("### Recorded runs")
        runs = gr.Dataframe(headers=RUN_HEADERS, interactive=False, elem_id="profile-runs")
        with gr.Row():
            picker = gr.Dropdown([], label="Run", elem_id="profile-picker", scale=3)
            refresh = gr.Button("Refresh list", scale=1)
            download = gr.DownloadButton("Download trace", interactive=False, elem_id="profile-download", scale=1)
        gr.Markdown(TRACE_NOTE, elem_id="profile-trace-note")
        with gr.Row():
            tb_button = gr.Button("Start TensorBoard", elem_id="tb-start", scale=1)
            tb_link = gr.Markdown(elem_id="tb-link")
        shown = [summary, phase_fig, phase_table, timeline, top_ops, trace_view]
        # preprocess=False: record() checks every value itself, so bad API input gets a clear message.
        traces = Traces()
        run.click(bind(record, lab, traces), [text, name],
                  [*shown, runs, picker, download, status], inputs_kwargs=controls.by_name,
                  api_name="profile", concurrency_id=MODEL_QUEUE, concurrency_limit=1,
                  show_progress="minimal", show_progress_on=[status], preprocess=False)
        jobs.stop_button(stop, TAB)
        listing = functools.partial(runs_view, lab.profile_dir)
        refresh.click(listing, picker, [runs, picker], api_name="list_runs")
        tab.load(lambda: listing(None), None, [runs, picker], api_visibility="private")
        picker.input(functools.partial(select_run, lab.profile_dir, traces), picker, [*shown, download],
                     api_visibility="private")
        tb_button.click(bind(start_tensorboard, board), None, tb_link, api_name="tensorboard")
    return tab


if __name__ == "__main__":
    build().queue().launch()
