"""Compare: two or more decoding configurations on the same input, N timed runs each, one verdict."""
from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

import gradio as gr

import engine

from . import figures, jobs
from .controls import MAX_NEW, choice, whole
from .formatting import ascii_poly, options_summary
from .lab import LabConfig, Limits, MODEL_QUEUE, bind, ct2_model, example_problems, hf_model, user_errors

HF = "hf"  # the preset column value that runs transformers generate() on the exported weights
CT2 = "ctranslate2"  # the preset column value that runs CTranslate2 on the same export, converted
COLUMNS = ["preset", "decoder", "width", "cache", "beam_cache", "attention", "max_new", "precision", "compile",
           "linear", "step"]
POLYNOMIAL = "the polynomial above"
ACTION = "Comparing"
TAB = "compare"
IDLE = ("Ready: press **Compare**. Progress, the time so far and an estimate of the time left show here; "
        "**Stop** ends a comparison.")


def hf_available() -> bool:
    return importlib.util.find_spec("transformers") is not None


def ct2_available() -> bool:
    return hf_available() and importlib.util.find_spec("ctranslate2") is not None


def default_configs() -> list[list]:
    presets = ["V1", "V3", "fastest"] + ([HF] if hf_available() else [])
    return [[name, "beam", 10, "", "", "", 40] + [""] * (len(COLUMNS) - 7) for name in presets]


@dataclass(frozen=True)
class Config:
    label: str  # short, for chart axes: "2. V3"
    detail: str  # the options in words
    opts: engine.DecodeOptions
    hf: bool = False
    ct2: bool = False


def _cell(value) -> str:
    text = "" if value is None else str(value).strip()
    return "" if text.lower() in ("nan", "none") else text


def table_rows(value) -> list[list]:
    """The configuration table as rows, from the page's or an API client's Dataframe payload
    ({"headers", "data", ...}) or a plain list of rows."""
    if isinstance(value, dict):
        value = value.get("data")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise ValueError("the configurations must be a table: a list of rows")
    return value


def parse_configs(rows: list[list], limits: Limits = Limits(), problems: int = 1) -> list[Config]:
    """Table rows -> configurations. A blank cell keeps the preset's value. Raises ValueError naming the row,
    also for more than limits.max_configs configurations or a decode bigger than the server allows."""
    configs = []
    for n, row in enumerate(rows or [], 1):
        cells = {c: "" for c in COLUMNS} | dict(zip(COLUMNS, (_cell(v) for v in row)))  # short rows: blanks
        if not any(cells.values()):
            continue
        if len(configs) == limits.max_configs:
            raise ValueError(f"at most {limits.max_configs} configurations per comparison on this server")
        name = cells["preset"] or engine.CUSTOM
        try:
            changes = {k: cells[k] for k in ("decoder", "cache", "beam_cache", "attention", "precision", "compile",
                                             "linear", "step") if cells[k]}
            changes.update({k: whole(cells[k], k, 1, most) for k, most in (("width", engine.MAX_WIDTH),
                                                                            ("max_new", MAX_NEW)) if cells[k]})
            opts = engine.options(engine.CUSTOM if name in (HF, CT2) else name, **changes)
            limits.check_decode(opts, problems)
        except ValueError as e:
            raise ValueError(f"configuration row {n}: {e}") from None
        if name == HF and not hf_available():
            raise ValueError(f"configuration row {n}: transformers generate() is not available here")
        if name == CT2 and not ct2_available():
            raise ValueError(f"configuration row {n}: CTranslate2 is not installed here (pip install ctranslate2)")
        if name in (HF, CT2) and not opts.exact:
            raise ValueError(f"configuration row {n}: the precision column applies to our decoder, not {name}")
        for column in ("compile", "linear", "step"):
            if name in (HF, CT2) and cells[column]:
                raise ValueError(f"configuration row {n}: the {column} column applies to our decoder, not {name}")
        if name in (HF, CT2) and opts.decoder not in ("greedy", "beam"):
            raise ValueError(f"configuration row {n}: {name} runs greedy or beam, not {opts.decoder}")
        search = f"beam {opts.beams}" if opts.decoder == "beam" else "greedy"
        if name == HF:
            detail = f"transformers generate(), {search}"
        elif name == CT2:
            detail = f"CTranslate2 Generator, {search}"
        else:
            detail = options_summary(opts)
        configs.append(Config(f"{n}. {name}", detail, opts, name == HF, name == CT2))
    if len(configs) < 2:
        raise ValueError("give at least two configurations to compare")
    return configs


def _run(lab: LabConfig, cfg: Config, fs: list[engine.Poly], prompts: list[list[int]],
         check: jobs.Check | None = None) -> engine.Decoded:
    if cfg.hf:
        return engine.hf_decode(hf_model(lab.checkpoint), prompts, cfg.opts)
    if cfg.ct2:
        generator, vocab = ct2_model(lab.checkpoint)
        return engine.ct2_decode(generator, vocab, prompts, cfg.opts)
    # the polynomial verifier is the acceptance check (stop_on_verified, cascades)
    return engine.run_to_completion(engine.decode_polynomials(lab.model(), fs, cfg.opts), check)


def _phases(lab: LabConfig, cfg: Config, fs: list[engine.Poly], result: engine.Decoded, tmp: str | None) -> dict:
    """ms per phase. With `tmp` and one polynomial: a profiled run (prefill, decode steps, cache work, beam
    selection, verification). Otherwise the decoder's own step timings split prefill (step 0) from the
    decode steps. transformers generate() and CTranslate2 only report their total."""
    if cfg.hf or cfg.ct2:
        return {"other": result.total_ms}
    if tmp is not None and len(fs) == 1:
        summary = engine.profile_run(lab.model(), fs[0], cfg.opts, out_dir=tmp, keep=1, warmup=False)
        return {p: v["ms"] for p, v in summary["phases"].items()}
    first = result.steps[0].elapsed_ms if result.steps else 0.0
    rest = sum(s.elapsed_ms for s in result.steps[1:])
    return {"prefill": first, "decode_step": rest, "other": max(0.0, result.total_ms - first - rest)}


def verdict(outputs: dict[str, list[tuple]]) -> str:
    """"outputs identical" when every configuration returns the same ranked answers for every problem."""
    labels = list(outputs)
    ref = outputs[labels[0]]
    differ = [l for l in labels[1:] if outputs[l] != ref]
    if not differ:
        return f"### ✓ Outputs identical\nAll {len(labels)} configurations return the same ranked answers."
    best_same = all([h[:1] for h in outputs[l]] == [h[:1] for h in ref] for l in labels[1:])
    detail = "The best answers agree; lower-ranked beams differ." if best_same else "The best answers differ."
    return "### ✗ Outputs differ\n" + detail + "\n\nDiffering from the first: " + "; ".join(differ)


def agreement_note(configs: list[Config], outputs: dict[str, list[tuple]], verified: dict[str, int]) -> str:
    """For every configuration that may change outputs (precision bf16, int8-dynamic): its measured agreement
    with the first float32 configuration, the share of identical best answers and of verified ones."""
    ref = next((c for c in configs if c.opts.exact), None)
    lines = []
    for c in configs:
        if c.opts.exact or ref is None:
            continue
        a, b = outputs[c.label], outputs[ref.label]
        same = sum(x[:1] == y[:1] for x, y in zip(a, b))
        n = len(b)
        lines.append(f"- {c.label} ({c.opts.precision}, may change outputs): best answer identical to {ref.label} "
                     f"on {same}/{n}; verified {verified[c.label]}/{n} against {verified[ref.label]}/{n}")
    return "\n".join(["Measured agreement with float32:", *lines]) if lines else ""


def _measure(lab: LabConfig, cfg: Config, fs: list[engine.Poly], runs: int, tmp: str | None, check: jobs.Check,
             report: Callable[[int, str], None]):
    """One warm-up, then `runs` timed decodes (the decoder's own device-synchronised total), then phases;
    report(k, what) after each of these runs + 2 parts."""
    model = lab.model()
    prompts = [engine.prompt_ids(f, model.config.prompt_format) for f in fs]
    report(0, "warm-up")
    _run(lab, cfg, fs, prompts, check)
    times = []
    for k in range(runs):
        check()
        report(1 + k, f"timed run {k + 1}/{runs}")
        result = _run(lab, cfg, fs, prompts, check)
        times.append(result.total_ms)
    check()
    report(1 + runs, "phases")
    return times, result, _phases(lab, cfg, fs, result, tmp)


def measure_all(lab: LabConfig, configs: list[Config], fs: list[engine.Poly], runs: int, profiled: bool,
                check: jobs.Check, report: jobs.Report) -> tuple[list, list, dict, dict]:
    """(result table rows, latency stats, phases, ranked outputs) of every configuration: plain values only."""
    table, stats, phases, outputs, verified = [], [], {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        for i, cfg in enumerate(configs):
            def part(k: int, what: str, i=i, cfg=cfg) -> None:  # share of all the runs still to do
                report((i + k / (runs + 2)) / len(configs), f"{cfg.label} ({i + 1}/{len(configs)}), {what}")

            times, result, phases[cfg.label] = _measure(lab, cfg, fs, runs, tmp if profiled else None, check, part)
            outputs[cfg.label] = [tuple(h.ids for h in hyps) for hyps in result.hypotheses]
            best = [engine.best_answer(engine.rank_answers(f, h)) for f, h in zip(fs, result.hypotheses)]
            verified[cfg.label] = sum(a is not None and a.verified for a in best)
            mean = statistics.fmean(times)
            stats.append({"label": cfg.label, "mean_ms": mean, "min_ms": min(times), "max_ms": max(times),
                          "speedup": stats[0]["mean_ms"] / mean if stats else 1.0})
            table.append([cfg.label, cfg.detail, round(mean, 2), round(min(times), 2), round(max(times), 2),
                          f"{stats[-1]['speedup']:.2f}x", f"{sum(a is not None and a.verified for a in best)}/"
                          f"{len(fs)}", "; ".join(ascii_poly(a.q) if a and a.q else "—" for a in best)])
    return table, stats, phases, outputs, verified


def compare(lab: LabConfig, source: str, text: str, rows, runs: float, profiled: bool = True,
            request: gr.Request = None):
    """Time each configuration, split its time into phases (one profiled run when `profiled` and the input
    is one polynomial, else the decoder's own step timings), and compare the outputs. A cancellable job;
    every value is checked here (the event skips Gradio's preprocessing). Yields (verdict, latency chart,
    phase chart, table, JSON, progress line): the previous result is cleared at once, then the progress
    line shows what runs, the time so far and the time left."""
    skip = gr.skip()
    t0 = time.monotonic()
    yield "", figures.latency_bars(()), figures.phase_stack({}), [], None, jobs.running_line(ACTION, None, 0.0)
    with user_errors("Compare"):
        try:
            source = choice(source, "input", [POLYNOMIAL, *engine.GEN_CASES])
            if source == POLYNOMIAL:
                fs = [engine.parse_polynomial(text if isinstance(text, str) else "")]
            else:
                fs = [p.f for p in engine.case_problems(source)]
            configs = parse_configs(table_rows(rows), lab.limits, len(fs))
            runs = whole(runs, "timed runs", 1, lab.limits.max_runs)
            profiled = profiled is True
        except ValueError as e:
            yield (skip,) * 5 + (jobs.rejected_line(ACTION, e),)
            raise
        try:
            table, stats, phases, outputs, verified = yield from jobs.run(
                ACTION, lambda check, report: measure_all(lab, configs, fs, runs, profiled, check, report),
                status=lambda line: (skip,) * 5 + (line,), stop_key=jobs.session_key(request, TAB))
        except jobs.Stopped:
            return
        what = "1 polynomial" if len(fs) == 1 else f"case {source} ({len(fs)} polynomials in one batch)"
        head = f"{verdict(outputs)}\n\n{len(configs)} configurations on {what}, {runs} timed runs each."
        note = agreement_note(configs, outputs, verified)
        head += f"\n\n{note}" if note else ""
        raw = {"configurations": [dict(label=c.label, detail=c.detail, hf=c.hf, ctranslate2=c.ct2,
                                     **asdict(c.opts)) for c in configs],
               "stats": stats}
    source = ("phases from one extra profiled run per configuration, apart from the timed runs"
              if profiled and len(fs) == 1 else "phases from the last timed run's own step timings")
    yield (head, figures.latency_bars(stats), figures.phase_stack(phases, source), table, raw,
           jobs.done_line(ACTION, time.monotonic() - t0))


def build(lab: LabConfig | None = None) -> gr.Blocks:
    lab = lab or LabConfig()
    with gr.Blocks(title="Compare") as tab:
        gr.Markdown("Run the same input through two or more configurations (any preset and options; `hf` = "
                    "transformers `generate()` on the same weights, `ctranslate2` = CTranslate2 on them, converted; "
                    "`precision` bf16 or int8-dynamic may change outputs: their agreement with float32 is reported; "
                    "`compile` inductor runs the decode step through torch.compile with the static cache and gather "
                    "or clone beams: the first run compiles, which takes seconds; `linear` aten runs F.linear, "
                    "packed the same weights transposed and oneDNN-packed for the CPU, tiled (fastest's) an AVX2 kernel "
                    "on weight tiles below 64 rows, same outputs; `step` "
                    "fused (fastest's) runs every layer of a decode step in one C++ call, modules through the "
                    "nn.Modules, same outputs) "
                    "and compare latency, phases and outputs. "
                    f"A blank cell keeps the preset's value. At most {lab.limits.max_configs} configurations, "
                    f"{lab.limits.max_runs} timed runs each; **Stop** ends a comparison within a second or two.")
        with gr.Row():
            source = gr.Dropdown([POLYNOMIAL, *engine.GEN_CASES], value=POLYNOMIAL, label="Input",
                                 info="a polynomial, or one of the seed's generation cases", elem_id="compare-source")
            text = gr.Textbox(example_problems(lab.checkpoint)[0][1], label="f(a)", elem_id="compare-input", scale=2)
            with gr.Column():
                runs = gr.Slider(1, lab.limits.max_runs, value=3, step=1, label="Timed runs per configuration",
                                 elem_id="compare-runs")
                profiled = gr.Checkbox(True, label="Profile the phases (one extra recorded run each; one polynomial)")
        rows = gr.Dataframe(default_configs(), headers=COLUMNS, type="array", interactive=True,
                            label="Configurations (preset: V1, V2, V3, fastest, custom, hf or ctranslate2)",
                            elem_id="compare-configs")
        with gr.Row():
            run = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=3)
            stop = gr.Button("Stop", variant="stop", elem_id="compare-stop", scale=1)
        status = gr.Markdown(IDLE, elem_id="compare-progress")
        verdict_md = gr.Markdown(elem_id="compare-verdict")
        with gr.Row():
            latency = gr.Plot(figures.latency_bars(()), label="Latency", elem_id="compare-latency")
            phase = gr.Plot(figures.phase_stack({}), label="Phases", elem_id="compare-phases")
        table = gr.Dataframe(headers=["configuration", "options", "mean ms", "min ms", "max ms", "speedup", "verified",
                                      "best answers"], interactive=False, label="Results", elem_id="compare-table")
        with gr.Accordion("Result as JSON", open=False):
            raw = gr.JSON()
        # preprocess=False: compare() checks every value itself, so bad API input gets a clear message.
        run.click(bind(compare, lab), [source, text, rows, runs, profiled],
                  [verdict_md, latency, phase, table, raw, status], api_name="compare",
                  concurrency_id=MODEL_QUEUE, concurrency_limit=1, show_progress="minimal",
                  show_progress_on=[status], preprocess=False)
        jobs.stop_button(stop, TAB)
    return tab


if __name__ == "__main__":
    build().queue().launch()
