"""Train the GPT on polynomial decomposition, on the CPU (or a CUDA GPU), with resume.

    python -m engine.train --out weights/default --run-dir runs/default --max-steps 4000
    python -m engine.train --run-dir runs/default --resume        # continue a cut run
    python -m engine.train --init weights/default --minutes 300 ...  # continue shipped weights, fresh optimizer
    python -m engine.train --preset paper --device cuda --minutes 60 --out weights/paper   # on a GPU

Problems are generated on the fly (or read with --data); targets are canonical by default;
the loss covers only the answer tokens. Each batch holds one degree pair (similar lengths,
little padding) and about --batch-tokens tokens. On a CUDA device the forward and backward run
under bfloat16 autocast (weights and optimizer state stay float32).
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint, load_state, save_checkpoint
from .device import pick_device, set_threads
from .data import ALL_PAIRS, Problem, parse_pair, random_problem, read_dataset
from .model import GPT, PRESETS
from .polynomial import from_prefix_tokens, PolynomialError, verify
from .tokenizer import PAD_ID, SEP_ID, decode, encode

log = logging.getLogger(__name__)


def problem_ids(p: Problem) -> tuple[list[int], list[int]]:
    """(prompt ids ending with ⁇, answer ids ending with ⁇)."""
    return encode(p.prompt) + [SEP_ID], encode(p.answer) + [SEP_ID]


def make_batch(problems: list[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (x, y); y is -1 everywhere except where the next token is an answer token."""
    seqs = [problem_ids(p) for p in problems]
    T = max(len(a) + len(b) for a, b in seqs) - 1
    x = torch.full((len(seqs), T), PAD_ID, dtype=torch.long)
    y = torch.full((len(seqs), T), -1, dtype=torch.long)
    for r, (prompt, answer) in enumerate(seqs):
        seq = prompt + answer
        x[r, : len(seq) - 1] = torch.tensor(seq[:-1])
        y[r, len(prompt) - 1: len(seq) - 1] = torch.tensor(answer)
    return x, y


def parse_mix(text: str) -> dict[tuple[int, int], float]:
    mix = {}
    for part in text.split(","):
        pair, _, w = part.partition(":")
        mix[parse_pair(pair)] = float(w) if w else 1.0
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("--mix weights must sum to > 0")
    return {k: v / total for k, v in mix.items()}


class Batches:
    """An endless stream of single-pair batches, from a generator or from files."""

    def __init__(self, mix, batch_tokens: int, canonical: bool, seed: int, files: list[str] | None = None):
        self.mix, self.batch_tokens, self.canonical = mix, batch_tokens, canonical
        self.rng = random.Random(seed)
        self.pool = None
        if files:
            pool = [p for f in files for p in read_dataset(f)]
            self.pool = sorted(pool, key=lambda p: len(p.prompt))

    def next(self) -> list[Problem]:
        if self.pool is not None:
            k = self.rng.randrange(len(self.pool))
            n = max(8, self.batch_tokens // (len(self.pool[k].prompt.split()) + 40))
            lo = max(0, min(k, len(self.pool) - n))
            return self.pool[lo: lo + n]
        (i, j), = self.rng.choices(list(self.mix), weights=list(self.mix.values()))
        est_len = len(random_problem(self.rng, i, j).line().split()) + 4
        n = max(8, self.batch_tokens // est_len)
        return [random_problem(self.rng, i, j, self.canonical) for _ in range(n)]


@torch.inference_mode()
def greedy_answers(model: GPT, problems: list[Problem], max_new: int = 40) -> list[list[int]]:
    """Plain full-recompute greedy decoding (independent of engine.decode, on purpose: it is the
    training-time yardstick). Right padding is exact here because attention is causal."""
    prompts = [problem_ids(p)[0] for p in problems]
    device = next(model.parameters()).device
    lens = torch.tensor([len(p) for p in prompts], device=device)
    T = min(model.config.block_size, int(lens.max()) + max_new)
    buf = torch.full((len(prompts), T), PAD_ID, dtype=torch.long)
    for r, p in enumerate(prompts):
        buf[r, : len(p)] = torch.tensor(p)
    buf = buf.to(device)
    out = [[] for _ in prompts]
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    rows = torch.arange(len(prompts), device=device)
    for _ in range(max_new):
        if done.all() or int(lens.max()) >= T:
            break
        logits = model(buf[:, : int(lens.max())])
        nxt = logits[rows, lens - 1].argmax(-1)
        nxt_host = nxt.tolist()
        for r in torch.nonzero(~done).flatten().tolist():
            t = nxt_host[r]
            if t == SEP_ID:
                done[r] = True
            else:
                out[r].append(t)
        buf[rows[~done], lens[~done]] = nxt[~done]
        lens = lens + (~done).long()
    return out


def verified_accuracy(model: GPT, problems: list[Problem]) -> float:
    ok = 0
    for p, ids in zip(problems, greedy_answers(model, problems)):
        try:
            ok += verify(p.f, from_prefix_tokens(decode(ids))).ok
        except PolynomialError:
            pass
    return ok / max(1, len(problems))


def progress(step: int, elapsed: float, args) -> float:
    """Fraction of the run done: by steps, or by training time when --minutes is set."""
    by_steps = step / args.max_steps if args.max_steps else 0.0
    return max(by_steps, elapsed / (60 * args.minutes)) if args.minutes else by_steps


def lr_at(step: int, elapsed: float, args) -> float:
    """Linear warm-up, then cosine decay to min_lr_frac * lr over the rest of the run. A run started
    with --init (fresh optimizer moments) warms up again, from its first step to the cosine's value."""
    warm_from = getattr(args, "warm_from", 0)
    if step < args.warmup and not warm_from:
        return args.lr * (step + 1) / args.warmup
    start = progress(args.warmup, 0.0, args) if not args.minutes else 0.0
    t = min(1.0, max(0.0, (progress(step, elapsed, args) - start) / max(1e-9, 1 - start)))
    lr = args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))
    return lr * min(1.0, (step - warm_from + 1) / args.warmup) if warm_from else lr


def save_state(path, model, opt, step, args, elapsed, history):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                "args": vars(args), "config": asdict(model.config), "history": history}, tmp)
    os.replace(tmp, path)


def segment(args, step: int, elapsed: float) -> dict:
    """What this invocation trains with, from where it starts; its end is filled in as it goes."""
    return {"from_step": step, "to_step": step, "from_minutes": round(elapsed / 60, 1),
            "to_minutes": round(elapsed / 60, 1), "mix": args.mix, "data": args.data, "minutes": args.minutes,
            "max_steps": args.max_steps, "lr": args.lr, "batch_tokens": args.batch_tokens,
            "threads": torch.get_num_threads(), "device": args.device, "init": args.init}


def history_until(history: list[dict], seg: dict, step: int, elapsed: float) -> list[dict]:
    """Every earlier invocation of this run plus the current one up to `step` (resumes change the recipe)."""
    return history + [dict(seg, to_step=step, to_minutes=round(elapsed / 60, 1))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train the polynomial-decomposition GPT.")
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--run-dir", default="runs/default", help="resume state, log.csv, val.csv")
    ap.add_argument("--out", default=None, help="export the final model here (e.g. weights/default)")
    start = ap.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.pt")
    start.add_argument("--init", metavar="STEM", default=None,
                       help="start from these weights (e.g. weights/default) with a fresh optimizer; the step "
                            "count, minutes and history continue from its meta")
    ap.add_argument("--data", nargs="*", default=None, help="train on these seed-format files instead")
    ap.add_argument("--mix", default=",".join(f"{i}_{j}" for i, j in ALL_PAIRS),
                    help="degree pairs with weights, e.g. 2_2:0.5,3_3:0.1 (share of steps)")
    ap.add_argument("--no-canonical", action="store_true", help="train on raw targets (random constant)")
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--max-steps", type=int, default=None,
                    help="step budget (default: 4000, or none when --minutes is given); the first one reached ends it")
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="training-time budget, minutes already trained included (--resume, --init); the cosine "
                         "schedule follows it and the run stops at it")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--save-every", type=float, default=300.0, help="seconds between resume states")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-n", type=int, default=48, help="validation problems per pair")
    args = ap.parse_args(argv)
    if args.max_steps is None:
        args.max_steps = 0 if args.minutes else 4000
    if not args.max_steps and not args.minutes:
        ap.error("give a budget: --max-steps N and/or --minutes M")
    try:
        set_threads(args.threads)
        args.device = str(pick_device(args.device))
    except ValueError as e:
        ap.error(str(e))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.makedirs(args.run_dir, exist_ok=True)
    state_path = os.path.join(args.run_dir, "state.pt")

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    st, init_meta = None, None
    if args.init:  # the checkpoint's own config, not --preset
        try:
            model, init_meta = load_checkpoint(args.init, "cpu")
        except CheckpointError as e:
            raise SystemExit(f"error: {e}") from None
    else:
        model = GPT(PRESETS[args.preset])
        st = torch.load(state_path, map_location="cpu", weights_only=True) if args.resume else None
        if st is not None:
            load_state(model, st["model"], source=state_path)
    model.to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    step, elapsed, history = 0, 0.0, []
    if st is not None:
        opt.load_state_dict(st["opt"])  # moves the moments to the parameters' device
        step, elapsed, history = st["step"], st["elapsed"], st.get("history", [])
        args.warm_from = st["args"].get("warm_from", 0)
        log.info(f"resumed from {state_path} at step {step} ({elapsed / 60:.1f} min trained); "
                 f"{progress(step, elapsed, args):.0%} of this budget done, lr now {lr_at(step, elapsed, args):.2e}")
    if init_meta is not None:
        step, elapsed = int(init_meta.get("steps", 0)), 60.0 * float(init_meta.get("train_minutes", 0.0))
        history, args.warm_from = list(init_meta.get("history", [])), step
        log.info(f"initialised from {args.init} at step {step} ({elapsed / 60:.1f} min trained); fresh optimizer, "
                 f"warm-up over {args.warmup} steps to lr {lr_at(step + args.warmup, elapsed, args):.2e}")
    seg = segment(args, step, elapsed)
    mix = parse_mix(args.mix)
    batches = Batches(mix, args.batch_tokens, not args.no_canonical, args.seed + step, args.data)
    val_rng = random.Random(999_001)  # fixed validation problems, disjoint seed from training
    val = {pair: [random_problem(val_rng, *pair, canonical=True) for _ in range(args.eval_n)] for pair in mix}
    log.info(f"model {args.preset}: {model.num_params():,} parameters; mix {mix}")

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    log_fh = open(os.path.join(args.run_dir, "log.csv"), "a", newline="")
    val_fh = open(os.path.join(args.run_dir, "val.csv"), "a", newline="")
    log_w, val_w = csv.writer(log_fh), csv.writer(val_fh)
    # With a time budget the bar counts training minutes; otherwise steps.
    bar = tqdm(total=round(args.minutes, 1) if args.minutes else args.max_steps, desc="train", dynamic_ncols=True,
               initial=round(elapsed / 60, 1) if args.minutes else step, unit="min" if args.minutes else "step",
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} min [{elapsed}<{remaining}{postfix}]"
               if args.minutes else None)
    last_save = time.time()
    model.train()
    try:
        while progress(step, elapsed, args) < 1.0 and not stop["now"]:
            t0 = time.time()
            x, y = (t.to(device) for t in make_batch(batches.next()))
            for g in opt.param_groups:
                g["lr"] = lr = lr_at(step, elapsed, args)
            with autocast():
                logits = model(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1), ignore_index=-1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            dt = time.time() - t0
            elapsed += dt
            step += 1
            tok_s = x.numel() / dt
            bar.set_postfix(step=step, loss=f"{loss.item():.3f}", tok_s=f"{tok_s:,.0f}", T=x.size(1))
            bar.update(dt / 60 if args.minutes else 1)
            log_w.writerow([step, f"{elapsed:.1f}", f"{loss.item():.4f}", f"{tok_s:.0f}", x.size(0), x.size(1),
                            f"{lr:.2e}"])
            finished = progress(step, elapsed, args) >= 1.0
            if step % args.eval_every == 0 or finished:
                model.eval()
                accs = {f"{i}_{j}": verified_accuracy(model, probs) for (i, j), probs in val.items()}
                model.train()
                for k, a in accs.items():
                    val_w.writerow([step, f"{elapsed:.1f}", k, f"{a:.4f}"])
                val_fh.flush()
                log.info(f"step {step}: greedy verified " + " ".join(f"{k} {a:.0%}" for k, a in accs.items()))
                if args.out:  # keep the exported model current, so a cut run still leaves usable weights
                    export(model, args, step, elapsed, finished, history_until(history, seg, step, elapsed))
                    model.train()
            if time.time() - last_save > args.save_every:
                save_state(state_path, model, opt, step, args, elapsed, history_until(history, seg, step, elapsed))
                log_fh.flush()
                last_save = time.time()
    finally:
        bar.close()
        save_state(state_path, model, opt, step, args, elapsed, history_until(history, seg, step, elapsed))
        log_fh.close()
        val_fh.close()
    log.info(f"stopped at step {step} after {elapsed / 60:.1f} min of training; state in {state_path}")


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"GPU: {torch.cuda.get_device_name(torch.device(device))}"
    return f"CPU, {torch.get_num_threads()} threads"


def export(model: GPT, args, step: int, elapsed: float, finished: bool, history: list[dict]) -> None:
    meta = {"recipe": {k: v for k, v in vars(args).items() if k not in ("resume", "out")},
            "steps": step, "train_minutes": round(elapsed / 60, 1), "canonical_targets": not args.no_canonical,
            "trained": True, "finished": finished, "machine": machine(args.device),
            "history": history}
    stem = save_checkpoint(model.eval(), args.out, meta)
    log.info(f"exported {stem}.safetensors (step {step}, finished={finished})")


if __name__ == "__main__":
    main()
