"""Train the GPT on polynomial decomposition, on the CPU (or CUDA GPUs), with resume; one process or many.

    python -m engine.train --run-dir runs/default --minutes 600 --adaptive --out runs/default/latest
    python -m engine.train --run-dir runs/default --resume --minutes 900 ...   # continue, a bigger budget
    python -m engine.train --init weights/default --minutes 300 ...  # continue shipped weights, fresh optimizer
    python -m engine.train --preset paper --device cuda --minutes 60 --out weights/paper   # on a GPU
    torchrun --standalone --nproc_per_node 2 -m engine.train --grad-accum 2 ...   # DistributedDataParallel

Problems are generated on the fly (or read with --data); targets are canonical by default; the loss covers
only the answer tokens, and the output head runs only at those positions. Each micro-batch holds one degree
pair (similar lengths, little padding) and about --batch-tokens tokens; a step takes --grad-accum of them (the
global batch), shared by the processes torchrun starts (engine/batches.py: one problem stream per micro-batch,
so the global batch and its problems do not depend on the number of processes). The prompt is written in the
model's prompt format (engine/prompt.py). The learning rate follows warm-up / stable / decay (engine/schedule.py):
the state before the cool-down is kept in RUN_DIR/stable.pt, and a --resume with a bigger budget continues
from it. With --adaptive, every validation round (fresh problems, the engine's cached greedy decoder) moves
the mix toward the pairs furthest below their targets, each pair keeping at least --floor of the steps; with
several processes validation is shared out, and rank 0 decides the mix and sends it to all.
On a CUDA device the forward and backward run under bfloat16 autocast (weights and optimizer state float32).
Under torchrun only rank 0 writes the resume state, logs, the progress bar and the exported model.
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from . import distributed
from .batches import SMALL_RANGE, Streams, make_batch, parse_mix
from .checkpoint import CheckpointError, config_from_dict, load_checkpoint, load_state, save_checkpoint
from .cli import add_runtime_args, apply_runtime_args
from .data import ALL_PAIRS
from .device import heap_trimmer, machine_info
from .distributed import Dist, all_gather_objects, broadcast_object, gather_rows
from .model import GPT, PRESETS
from .prompt import ANSWER_ORDERS, PROMPT_FORMATS
from .schedule import StepClock, adapt_mix, format_mix, in_cooldown, lr_at, progress
from .validation import validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """Where this invocation starts; set up once (the loop keeps its own step and time counters)."""
    model: GPT
    opt: torch.optim.Optimizer
    step: int = 0
    elapsed: float = 0.0                 # training seconds so far
    history: tuple[dict, ...] = ()       # every earlier invocation of this run
    mix: dict | None = None              # the degree-pair mix to continue with (None: --mix)
    warm_from: int = 0                   # a fresh optimizer (--init) warms up again from this step
    resumed_from: str | None = None      # which resume state, in words
    streams: list | None = None          # the saved position of every problem stream (None: seed them afresh)
    grad_accum: int | None = None        # micro-batches per step of the resumed run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train the polynomial-decomposition GPT.")
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--prompt-format", default=None, choices=PROMPT_FORMATS,
                    help="how f is written in the prompt (default: the preset's); fixed once a run has started")
    ap.add_argument("--answer-order", default=None, choices=ANSWER_ORDERS,
                    help="the order of Q's terms in the answers (default: the preset's or --init's); a new run or "
                         "--init may set it, a --resume keeps the run's")
    ap.add_argument("--run-dir", default="runs/default", help="resume state, log.csv, val.csv")
    ap.add_argument("--out", default=None, help="export the model here at every validation and at the end")
    start = ap.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue from RUN_DIR/state.pt (or from stable.pt, before the last cool-down, when "
                            "the new budget ends later)")
    start.add_argument("--init", metavar="STEM", default=None,
                       help="start from these weights (e.g. weights/default) with a fresh optimizer; the step "
                            "count, minutes and history continue from its meta")
    ap.add_argument("--data", nargs="*", default=None, help="train on these seed-format files instead")
    ap.add_argument("--mix", default=",".join(f"{i}_{j}" for i, j in ALL_PAIRS),
                    help="degree pairs with weights, e.g. 2_2:0.5,3_3:0.1 (share of steps)")
    ap.add_argument("--adaptive", action="store_true",
                    help="after every validation, shift the mix toward the pairs furthest below their targets")
    ap.add_argument("--floor", type=float, default=0.04, help="the least share of steps per pair (--adaptive)")
    ap.add_argument("--small-share", type=float, default=0.0,
                    help=f"share of batches with P and Q coefficients in [-{SMALL_RANGE}, {SMALL_RANGE}] (as people "
                         "type them)")
    ap.add_argument("--no-canonical", action="store_true", help="train on raw targets (random constant)")
    ap.add_argument("--batch-tokens", type=int, default=8192, help="tokens per micro-batch")
    ap.add_argument("--grad-accum", type=int, default=None,
                    help="micro-batches per optimizer step over all processes (the global batch); a multiple of "
                         "the number of processes (default: the resume state's, else the number of processes)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="step budget (default: 4000, or none when --minutes is given); the first one reached ends it")
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="training-time budget, minutes already trained included (--resume, --init); the "
                         "cool-down takes its last --cooldown and the run stops at it")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05, help="the learning rate at the end of the cool-down")
    ap.add_argument("--cooldown", type=float, default=0.1, help="share of the budget spent cooling down (WSD)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234)
    add_runtime_args(ap, checkpoint=False)
    ap.add_argument("--save-every", type=float, default=300.0, help="seconds between resume states")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-n", type=int, default=48, help="validation problems per pair")
    args = ap.parse_args(argv)
    # what this command line sets itself; a --resume takes the rest of the recipe from the run's state
    for action in ap._actions:
        action.default = argparse.SUPPRESS
    args.given = sorted(vars(ap.parse_args(argv)))
    if not args.resume:
        check_budget(args, ap.error)
    if not 0.0 <= args.cooldown < 1.0:
        ap.error("--cooldown must be in [0, 1)")
    if args.grad_accum is not None and args.grad_accum < 1:
        ap.error("--grad-accum must be >= 1")
    args.device = str(apply_runtime_args(ap, args))
    return args


# what a --resume carries over from the run's state unless the command line says otherwise
RECIPE = ("mix", "adaptive", "floor", "small_share", "no_canonical", "batch_tokens", "max_steps", "minutes", "lr",
          "min_lr_frac", "cooldown", "warmup", "weight_decay", "grad_clip", "seed", "save_every", "eval_every",
          "eval_n", "data")


def check_budget(args, error) -> None:
    if args.max_steps is None:
        args.max_steps = 0 if args.minutes else 4000
    if not args.max_steps and not args.minutes:
        error("give a budget: --max-steps N and/or --minutes M")


def inherit_recipe(args, saved: dict) -> list[str]:
    """A resumed run trains as it was started: every recipe option the command line does not give comes
    from the state's own arguments. Returns the names taken over."""
    taken = []
    for name in RECIPE:
        if name not in getattr(args, "given", ()) and name in saved:
            setattr(args, name, saved[name])
            taken.append(name)
    check_budget(args, fail)
    return taken


def fail(message: str):
    raise SystemExit(f"error: {message}")


def build_model(args, st: dict | None) -> GPT:
    """A fresh model from --preset (and --prompt-format), or the resume state's own config."""
    if st is None:
        cfg = PRESETS[args.preset]
        if args.prompt_format and args.prompt_format != cfg.prompt_format:
            cfg = replace(cfg, prompt_format=args.prompt_format, vocab_size=0)
        if args.answer_order:
            cfg = replace(cfg, answer_order=args.answer_order)
        return GPT(cfg)
    cfg = config_from_dict(st["config"])
    if args.prompt_format and args.prompt_format != cfg.prompt_format:
        raise SystemExit(f"error: this run reads prompts as {cfg.prompt_format!r}; --prompt-format cannot change it")
    if args.answer_order and args.answer_order != cfg.answer_order:
        raise SystemExit(f"error: this run writes answers in {cfg.answer_order!r} order; --answer-order cannot "
                         f"change it on a resume (start from its weights with --init instead)")
    model = GPT(cfg)
    load_state(model, st["model"], source="resume state")
    return model


def load_resume_state(args) -> tuple[dict, str]:
    """(state, what it is): state.pt, or stable.pt when state.pt is inside a cool-down that the new budget
    moves later."""
    state_path, stable_path = (os.path.join(args.run_dir, n) for n in ("state.pt", "stable.pt"))
    if not os.path.exists(state_path):
        raise SystemExit(f"error: nothing to resume: no {state_path}")
    st = torch.load(state_path, map_location="cpu", weights_only=True)
    if taken := inherit_recipe(args, st.get("args", {})):  # the budget below is the run's unless given
        log.info("from the run's state: " + ", ".join(f"{n.replace('_', '-')} {getattr(args, n)}" for n in taken))
    if st.get("cooling") and os.path.exists(stable_path):
        stable = torch.load(stable_path, map_location="cpu", weights_only=True)
        if not (in_cooldown(stable["step"], stable["elapsed"], args) or in_cooldown(st["step"], st["elapsed"], args)):
            log.info(f"the new budget ends later: continuing from {stable_path} (step {stable['step']}, before the "
                     f"cool-down of the last release); steps {stable['step']}..{st['step']} are set aside")
            # the released cool-down stays on record in the history
            return (dict(stable, history=st.get("history", [])),
                    f"stable.pt at step {stable['step']} (cool-down to step {st['step']} set aside)")
    return st, f"state.pt at step {st['step']}"


def optimizer(model: GPT, args) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))


def start_run(args, device: torch.device) -> Start:
    """Set-up: a fresh model, the resume state (--resume) or exported weights with a fresh optimizer (--init)."""
    if args.init:  # the checkpoint's own config, not --preset
        try:
            model, meta = load_checkpoint(args.init, "cpu")
        except CheckpointError as e:
            raise SystemExit(f"error: {e}") from None
        if args.answer_order and args.answer_order != model.config.answer_order:
            log.info(f"answers change from {model.config.answer_order} to {args.answer_order} order")
            model.config = replace(model.config, answer_order=args.answer_order)
        model.to(device)
        step = int(meta.get("steps", 0))
        start = Start(model, optimizer(model, args), step, 60.0 * float(meta.get("train_minutes", 0.0)),
                      tuple(meta.get("history", [])), warm_from=step)
        log.info(f"initialised from {args.init} at step {step} ({start.elapsed / 60:.1f} min trained); fresh "
                 f"optimizer, warm-up over {args.warmup} steps to lr "
                 f"{lr_at(step + args.warmup, start.elapsed, args, start.warm_from):.2e}")
        return start
    if not args.resume:
        model = build_model(args, None).to(device)
        return Start(model, optimizer(model, args))
    st, resumed_from = load_resume_state(args)
    model = build_model(args, st).to(device)
    opt = optimizer(model, args)
    opt.load_state_dict(st["opt"])  # moves the moments to the parameters' device
    warm_from = st.get("warm_from", st["args"].get("warm_from", 0))  # older states kept it in their args
    mix = parse_mix(st["mix"]) if args.adaptive and st.get("mix") else None  # the adapted mix carries on
    start = Start(model, opt, st["step"], st["elapsed"], tuple(st.get("history", [])), mix, warm_from, resumed_from,
                  st.get("streams"), st.get("grad_accum"))
    log.info(f"resumed at step {start.step} ({start.elapsed / 60:.1f} min trained); "
             f"{progress(start.step, start.elapsed, args):.0%} of this budget done, lr now "
             f"{lr_at(start.step, start.elapsed, args, warm_from):.2e}")
    return start


def segment(args, start: Start) -> dict:
    """What this invocation trains with, from where it starts; its end is filled in as it goes."""
    minutes = round(start.elapsed / 60, 1)
    return {"from_step": start.step, "to_step": start.step, "from_minutes": minutes, "to_minutes": minutes,
            "mix": args.mix, "adaptive": args.adaptive, "data": args.data, "minutes": args.minutes,
            "max_steps": args.max_steps, "lr": args.lr, "cooldown": args.cooldown, "batch_tokens": args.batch_tokens,
            "small_share": args.small_share, "threads": torch.get_num_threads(), "device": args.device,
            "init": args.init, "resumed_from": start.resumed_from, "prompt_format": start.model.config.prompt_format,
            "answer_order": start.model.config.answer_order, "world_size": args.world_size, "grad_accum": args.grad_accum}


def history_until(history: tuple[dict, ...], seg: dict, step: int, elapsed: float, mix=None) -> list[dict]:
    """Every earlier invocation of this run plus the current one up to `step` (resumes change the recipe)."""
    if step == seg["from_step"]:  # nothing trained in this invocation (e.g. resumed at the end of its budget)
        return list(history)
    now = dict(seg, to_step=step, to_minutes=round(elapsed / 60, 1))
    if mix is not None:
        now["mix_now"] = format_mix(mix)
    return list(history) + [now]


def save_state(path, start: Start, step, args, elapsed, history, mix, streams: list | None = None):
    """The resume state; `streams` holds the position of every problem stream (one per micro-batch of a step)."""
    tmp = path + ".tmp"
    state = {"model": start.model.state_dict(), "opt": start.opt.state_dict(), "step": step, "elapsed": elapsed,
             "args": vars(args), "warm_from": start.warm_from, "config": asdict(start.model.config),
             "history": history, "mix": format_mix(mix), "cooling": in_cooldown(step, elapsed, args),
             "grad_accum": args.grad_accum}
    if streams is not None:
        state["streams"] = streams
    torch.save(state, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> GPT:
    """Train; returns the model (identical on every process under torchrun)."""
    args = parse_args(argv)
    with distributed.joined(torch.device(args.device)) as (d, device):
        args.world_size = d.world_size
        logging.basicConfig(level=logging.INFO if d.is_main else logging.WARNING, format="%(message)s")
        return run(args, d, device)


def run(args, d: Dist, device: torch.device) -> GPT:
    os.makedirs(args.run_dir, exist_ok=True)  # with several machines, RUN_DIR must be on a shared filesystem
    torch.manual_seed(args.seed)  # the same initial weights in every process (DDP also sends rank 0's)
    start = start_run(args, device)
    fmt = start.model.config.prompt_format
    args.grad_accum = args.grad_accum or start.grad_accum or d.world_size
    try:
        streams = Streams(args.grad_accum, d, args.seed + start.step, start.streams,
                          mix=start.mix or parse_mix(args.mix), batch_tokens=args.batch_tokens,
                          canonical=not args.no_canonical, prompt_format=fmt, files=args.data,
                          small_share=args.small_share)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if start.streams is not None and len(start.streams) != args.grad_accum:
        log.info(f"the state holds {len(start.streams)} problem streams, this run uses {args.grad_accum}")
    log.info(f"model: {start.model.num_params():,} parameters, prompt format {fmt}, "
             f"{start.model.config.answer_order} answers; mix {format_mix(streams.mix)}")
    if d.enabled:
        log.info(f"{d.world_size} processes, {args.grad_accum} micro-batches per step "
                 f"({args.grad_accum // d.world_size} per process)")
    net = DDP(start.model, device_ids=[device.index] if device.type == "cuda" else None) if d.enabled else start.model
    train_loop(args, start, net, streams, device, d)
    return start.model


def train_step(args, start: Start, net, streams: Streams, device, autocast,
               lr: float) -> tuple[float, list[torch.Tensor]]:
    """One optimizer step on this process's next micro-batches; returns (summed loss, inputs of each). Each
    loss is divided by the local count and DDP averages over processes, so the gradient is the mean over the
    global batch whatever the number of processes; gradients are exchanged once, on the last micro-batch."""
    micro = [tuple(t.to(device) for t in make_batch(b, start.model.config.prompt_format,
                                                       start.model.config.answer_order)) for b in streams.next()]
    for g in start.opt.param_groups:
        g["lr"] = lr
    start.opt.zero_grad(set_to_none=True)
    total = 0.0
    for k, (x, y) in enumerate(micro):
        sync = k == len(micro) - 1 or not isinstance(net, DDP)
        with nullcontext() if sync else net.no_sync():
            with autocast():
                select = y != -1  # the head runs only where there is a target: the answer positions
                loss = F.cross_entropy(net(x, select=select).float(), y[select])
            (loss / len(micro)).backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(start.model.parameters(), args.grad_clip)
    start.opt.step()
    return total, [x for x, _ in micro]


def train_loop(args, start: Start, net, streams: Streams, device, d: Dist = Dist()) -> None:
    """Train until the budget is spent or SIGTERM; validate, export and save the resume state on the way."""
    state_path, stable_path = (os.path.join(args.run_dir, n) for n in ("state.pt", "stable.pt"))
    stop = {"now": False, "agreed": False}  # under torchrun a stop counts once every process knows of it
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    clock = StepClock()
    signal.signal(signal.SIGCONT, clock.continued)  # time stopped under SIGSTOP is not training time
    stopping = (lambda: stop["agreed"]) if d.enabled else (lambda: stop["now"])  # noqa: E731
    step, elapsed, seg = start.step, start.elapsed, segment(args, start)
    hist = lambda: history_until(start.history, seg, step, elapsed, streams.mix)  # noqa: E731

    def save(path: str, with_streams: bool = True) -> None:
        parts = all_gather_objects(d, streams.states()) if with_streams else None  # every process takes part
        if d.is_main:
            merged = {s: state for part in parts for s, state in part.items()} if parts else None
            save_state(path, start, step, args, elapsed, hist(), streams.mix,
                       [merged[s] for s in range(streams.count)] if merged else None)

    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    # With a time budget the bar counts training minutes; otherwise steps.
    bar = tqdm(total=round(args.minutes, 1) if args.minutes else args.max_steps, desc="train", dynamic_ncols=True,
               initial=round(elapsed / 60, 1) if args.minutes else step, unit="min" if args.minutes else "step",
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} min [{elapsed}<{remaining}{postfix}]"
               if args.minutes else None, disable=not d.is_main)
    where = lambda name: os.path.join(args.run_dir, name) if d.is_main else os.devnull  # noqa: E731 (rank 0 writes)
    log_fh, val_fh = open(where("log.csv"), "a", newline=""), open(where("val.csv"), "a", newline="")
    log_w, last_save = csv.writer(log_fh), time.time()
    stable_saved = in_cooldown(step, elapsed, args)  # resumed inside the cool-down: stable.pt is already there
    start.model.train()
    trim = heap_trimmer()
    clean, exported = False, False
    try:
        while progress(step, elapsed, args) < 1.0 and not stopping():
            if not stable_saved and in_cooldown(step, elapsed, args):
                save(stable_path)  # the state a later, bigger budget continues from
                stable_saved = True
            t0, lr = time.time(), lr_at(step, elapsed, args, start.warm_from)
            loss_sum, xs = train_step(args, start, net, streams, device, autocast, lr)
            trim()  # batches change shape every step: without this the process grows by GBs (heap_trimmer)
            # One exchange per step: every process then agrees on the time (the schedule and the budget depend
            # on it), on stopping and on saving; rank 0 logs the whole step.
            rows = gather_rows(d, [clock.seconds(time.time() - t0), sum(x.numel() for x in xs), loss_sum, sum(x.size(0) for x in xs),
                                   max(x.size(1) for x in xs), stop["now"], time.time() - last_save > args.save_every],
                               device)
            dt, tokens, loss = rows[:, 0].max().item(), rows[:, 1].sum().item(), rows[:, 2].sum().item() / streams.count
            B, T = int(rows[:, 3].sum()), int(rows[:, 4].max())
            stop["agreed"], save_due = bool(rows[:, 5].any()), bool(rows[0, 6])
            elapsed, step = elapsed + dt, step + 1
            bar.set_postfix(step=step, loss=f"{loss:.3f}", tok_s=f"{tokens / dt:,.0f}", T=T)
            bar.update(dt / 60 if args.minutes else 1)
            log_w.writerow([step, f"{elapsed:.1f}", f"{loss:.4f}", f"{tokens / dt:.0f}", B, T, f"{lr:.2e}"])
            log_fh.flush()  # one short line per step: the log is current for anyone watching
            finished = progress(step, elapsed, args) >= 1.0
            if step % args.eval_every == 0 or finished:
                validation_round(args, start.model, streams, step, elapsed, csv.writer(val_fh), d)
                val_fh.flush()
                if args.out and d.is_main:  # keep the exported model current: a cut run still leaves weights
                    export(start.model, args, step, elapsed, finished, hist())
                    exported = True
                    start.model.train()
            if save_due:
                save(state_path)
                log_fh.flush()
                last_save = time.time()
        clean = True
        if args.out and d.is_main and not exported:  # e.g. resumed at the end of its budget: export it anyway
            export(start.model, args, step, elapsed, progress(step, elapsed, args) >= 1.0, hist())
    finally:
        bar.close()
        # After an error under torchrun the other processes may be gone: keep what this one has, no exchange.
        save(state_path, with_streams=clean or not d.enabled)
        log_fh.close()
        val_fh.close()
    if d.enabled:
        distributed.check_in_sync(d, start.model, device)
        log.info(f"parameters identical on all {d.world_size} processes")
    log.info(f"stopped at step {step} after {elapsed / 60:.1f} min of training; state in {state_path}")


# ---------------------------------------------------------------- evaluation and export

def validation_round(args, model: GPT, streams: Streams, step: int, elapsed: float, val_w, d: Dist = Dist()) -> None:
    """Validate (every process its share), write val.csv rows, and with --adaptive move the mix toward the pairs
    below their targets: rank 0 decides it and sends it to every process, so all draw from the same mix."""
    result = validate(model, list(streams.mix), args.eval_n, step, d)
    accs = {pair: acc for pair, (acc, _) in result.items()}
    for (i, j), (acc, loss_ij) in result.items():
        val_w.writerow([step, f"{elapsed:.1f}", f"{i}_{j}", f"{acc:.4f}", f"{streams.mix[(i, j)]:.4f}",
                        f"{loss_ij:.4f}"])
    log.info(f"step {step}: greedy verified " + " ".join(f"{i}_{j} {a:.0%}" for (i, j), a in accs.items()))
    if args.adaptive and streams.pool is None:
        streams.mix = broadcast_object(d, adapt_mix(streams.mix, accs, args.floor) if d.is_main else None)
        log.info(f"mix now {format_mix(streams.mix)}")


def export(model: GPT, args, step: int, elapsed: float, finished: bool, history: list[dict]) -> None:
    """The model and a meta the trainer writes in full: recipe, progress, machine and every invocation."""
    meta = {"recipe": {k: v for k, v in vars(args).items() if k not in ("resume", "out", "given")},
            "steps": step, "train_minutes": round(elapsed / 60, 1), "canonical_targets": not args.no_canonical,
            "trained": True, "finished": finished, "history": history,
            "machine": dict(machine_info(args.device), processes=args.world_size)}
    stem = save_checkpoint(model.eval(), args.out, meta)
    log.info(f"exported {stem}.safetensors (step {step}, finished={finished})")


if __name__ == "__main__":
    main()
