"""Training throughput on this machine: one process with N threads against N processes (torchrun, gloo) with
one thread each, on the same model, the same global batch and the same problems.

    python -m engine.scaling                         # measure; writes docs/scaling.json, prints a table + JSON
    python -m engine.scaling --readme README.md      # ... and renders the table into the README
    python -m engine.scaling --render-only --readme README.md   # re-render the README from the JSON alone

It needs N idle cores: anything else running shares them, and the figures then say nothing. Each configuration
trains --steps steps from the same random start with --grad-accum N (N micro-batches of --batch-tokens per
step); tokens/s counts the tokens fed (padding included) over the steps after the first --skip (warm-up).
The trainer logs tokens/s per step; the tokens of each step are replayed here from the same problem streams,
which also checks that both configurations trained on the same batches.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

from .batches import Streams, make_batch, parse_mix
from .data import ALL_PAIRS
from .device import machine_info
from .distributed import Dist
from .model import PRESETS

DEFAULT_OUT = os.path.join("docs", "scaling.json")
BEGIN, END = "<!-- scaling:start", "<!-- scaling:end -->"


def train_command(processes: int, threads: int, run_dir: str, args) -> list[str]:
    train = ["-m", "engine.train", "--preset", args.preset, "--device", "cpu", "--run-dir", run_dir,
             "--max-steps", str(args.steps), "--grad-accum", str(args.processes), "--batch-tokens",
             str(args.batch_tokens), "--mix", args.mix, "--seed", str(args.seed), "--threads", str(threads),
             "--cooldown", "0", "--eval-every", str(args.steps + 1), "--eval-n", "1"]
    if processes == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), *train]


def replay(args) -> list[tuple[int, int]]:
    """(tokens, rows) of every step, from the problem streams the trainer draws with these settings."""
    fmt = PRESETS[args.preset].prompt_format
    streams = Streams(args.processes, Dist(), args.seed, None, mix=parse_mix(args.mix),
                      batch_tokens=args.batch_tokens, canonical=True, prompt_format=fmt)
    steps = []
    for _ in range(args.steps):
        xs = [make_batch(b, fmt)[0] for b in streams.next()]
        steps.append((sum(x.numel() for x in xs), sum(x.size(0) for x in xs)))
    return steps


def measure(processes: int, threads: int, args, steps: list[tuple[int, int]]) -> dict:
    with tempfile.TemporaryDirectory(prefix="polydecode-scaling-") as run_dir:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        r = subprocess.run(train_command(processes, threads, run_dir, args), env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"training with {processes} process(es) failed:\n{r.stderr[-3000:]}")
        with open(os.path.join(run_dir, "log.csv")) as fh:
            log = [(float(row[3]), int(row[4])) for row in csv.reader(fh)]  # tokens/s, rows of each step
    same = [rows for _, rows in log] == [rows for _, rows in steps]
    kept = list(zip(steps, log))[args.skip:]
    tokens = sum(t for (t, _), _ in kept)
    seconds = sum(t / tok_s for (t, _), (tok_s, _) in kept)  # each step's time, from its tokens/s
    plural = lambda n, word: f"{n} {word}{'es' if word.endswith('s') else 's'}" if n > 1 else f"{n} {word}"  # noqa: E731
    return {"config": f"{plural(processes, 'process')} x {plural(threads, 'thread')}",
            "processes": processes, "threads": threads, "tokens_per_s": round(tokens / seconds, 1),
            "step_ms": round(1e3 * seconds / len(kept), 1), "steps_measured": len(kept), "same_batches": same}


def render(result: dict) -> str:
    """The README's table, from the JSON alone."""
    m, s = result["machine"], result["settings"]
    lines = [f"Measured by `python -m engine.scaling` on {m['cpu']} ({m['cores']} cores), torch {m['torch']}: "
             f"preset `{s['preset']}`, {s['steps']} steps of {s['grad_accum']} micro-batches x {s['batch_tokens']} "
             f"tokens, the first {s['skip']} not counted.", "",
             "| configuration | processes | threads each | tokens/s | ms per step | same batches |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['config']} | {r['processes']} | {r['threads']} | {r['tokens_per_s']:,.0f} | "
                     f"{r['step_ms']:,.1f} | {'yes' if r['same_batches'] else 'NO'} |")
    lines += ["", f"{result['rows'][1]['config']} against {result['rows'][0]['config']}: "
                  f"**{result['summary']['speedup']:.2f}x** the tokens/s."]
    return "\n".join(lines)


def update_readme(path: str, table: str) -> None:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"{path} has no '{BEGIN} ... {END}' block")
    start = text.index("\n", start) + 1  # keep the marker line itself
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text[:start] + table + "\n" + text[stop:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Training tokens/s: 1 process x N threads vs N processes x 1 thread.")
    ap.add_argument("--processes", type=int, default=2, help="N: processes (and threads of the single process)")
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the figures")
    ap.add_argument("--batch-tokens", type=int, default=8192, help="tokens per micro-batch")
    ap.add_argument("--mix", default=",".join(f"{i}_{j}" for i, j in ALL_PAIRS))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default=DEFAULT_OUT, help="the JSON written (and read by --render-only)")
    ap.add_argument("--readme", default=None, help="render the table into this file's scaling block")
    ap.add_argument("--render-only", action="store_true", help="do not measure: render --out into --readme")
    args = ap.parse_args(argv)
    if args.processes < 2 or not 0 <= args.skip < args.steps:
        ap.error("need --processes >= 2 and 0 <= --skip < --steps")
    if args.render_only:
        with open(args.out, encoding="utf-8") as fh:
            result = json.load(fh)
    else:
        steps = replay(args)
        rows = [measure(1, args.processes, args, steps), measure(args.processes, 1, args, steps)]
        result = {"suite": "scaling", "machine": machine_info(),
                  "settings": {"preset": args.preset, "steps": args.steps, "skip": args.skip,
                               "grad_accum": args.processes, "batch_tokens": args.batch_tokens, "mix": args.mix,
                               "seed": args.seed, "backend": "gloo"},
                  "rows": rows, "summary": {"speedup": round(rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"], 3)}}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    table = render(result)
    if args.readme:
        update_readme(args.readme, table)
    print(table)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
