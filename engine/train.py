"""Train the GPT on polynomial decomposition, on the CPU (or a CUDA GPU), with resume.

    python -m engine.train --run-dir runs/default --minutes 600 --adaptive --out runs/default/latest
    python -m engine.train --run-dir runs/default --resume --minutes 900 ...   # continue, a bigger budget
    python -m engine.train --init weights/default --minutes 300 ...  # continue shipped weights, fresh optimizer
    python -m engine.train --preset paper --device cuda --minutes 60 --out weights/paper   # on a GPU

Problems are generated on the fly (or read with --data); targets are canonical by default; the loss covers
only the answer tokens, and the output head runs only at those positions. Each batch holds one degree pair
(similar lengths, little padding) and about --batch-tokens tokens. The prompt is written in the model's
prompt format (engine/prompt.py). The learning rate follows warm-up / stable / decay (engine/schedule.py):
the state before the cool-down is kept in RUN_DIR/stable.pt, and a --resume with a bigger budget continues
from it. With --adaptive, every validation round (fresh problems, the engine's cached greedy decoder) moves
the mix toward the pairs furthest below their targets, each pair keeping at least --floor of the steps.
On a CUDA device the forward and backward run under bfloat16 autocast (weights and optimizer state float32).
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import random
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, replace

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import CheckpointError, config_from_dict, load_checkpoint, load_state, save_checkpoint
from .cli import add_runtime_args, apply_runtime_args
from .data import ALL_PAIRS, COEFF_RANGE, Problem, parse_pair, random_problem, read_dataset
from .decoding import best_answer, preset, solve
from .model import GPT, PRESETS
from .prompt import PROMPT_FORMATS, prompt_ids
from .schedule import adapt_mix, format_mix, in_cooldown, lr_at, progress
from .tokenizer import PAD_ID, SEP_ID, encode

log = logging.getLogger(__name__)

VAL_SEED = 999_001  # validation problems come from their own stream, never the training one
SMALL_RANGE = 5  # "small" problems, as people type them: P and Q coefficients in [-5, 5]


def problem_ids(p: Problem, prompt_format: str = "seed") -> tuple[list[int], list[int]]:
    """(prompt ids ending with ⁇, answer ids ending with ⁇); the answer is always seed tokens."""
    return prompt_ids(p.f, prompt_format), encode(p.answer) + [SEP_ID]


def make_batch(problems: list[Problem], prompt_format: str = "seed") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (x, y); y is -1 everywhere except where the next token is an answer token."""
    seqs = [problem_ids(p, prompt_format) for p in problems]
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
    """An endless stream of single-pair batches, from a generator or from files. `mix` may change between
    batches (the adaptive mix)."""

    def __init__(self, mix, batch_tokens: int, canonical: bool, seed: int, prompt_format: str,
                 files: list[str] | None = None, small_share: float = 0.0):
        self.mix, self.batch_tokens, self.canonical = mix, batch_tokens, canonical
        self.small_share = small_share  # batches whose P and Q coefficients lie in [-SMALL_RANGE, SMALL_RANGE]
        self.prompt_format = prompt_format
        self.rng = random.Random(seed)
        self.pool = None
        if files:
            pool = [p for f in files for p in read_dataset(f)]
            self.pool = sorted(pool, key=lambda p: len(p.prompt))

    def _tokens(self, p: Problem) -> int:
        return len(prompt_ids(p.f, self.prompt_format)) + len(p.answer.split()) + 1

    def next(self) -> list[Problem]:
        if self.pool is not None:
            k = self.rng.randrange(len(self.pool))
            n = max(8, self.batch_tokens // (self._tokens(self.pool[k]) + 8))
            lo = max(0, min(k, len(self.pool) - n))
            return self.pool[lo: lo + n]
        (i, j), = self.rng.choices(list(self.mix), weights=list(self.mix.values()))
        r = SMALL_RANGE if self.small_share and self.rng.random() < self.small_share else COEFF_RANGE
        first = random_problem(self.rng, i, j, self.canonical, r)
        n = max(8, self.batch_tokens // (self._tokens(first) + 4))
        return [first] + [random_problem(self.rng, i, j, self.canonical, r) for _ in range(n - 1)]


def validation_problems(pairs, n: int, step: int) -> dict[tuple[int, int], list[Problem]]:
    """Fresh problems for each validation round (a stream seeded by the step, disjoint from training)."""
    rng = random.Random(f"{VAL_SEED}:{step}")
    return {pair: [random_problem(rng, *pair, canonical=True) for _ in range(n)] for pair in pairs}


@torch.inference_mode()
def verified_accuracy(model: GPT, problems: list[Problem], batch_size: int = 64) -> float:
    """Greedy verified accuracy with the engine's cached decoder (the same one users run)."""
    opts = preset("fastest", decoder="greedy", width=1, max_new=40)
    ok = 0
    for lo in range(0, len(problems), batch_size):
        for ranked in solve(model, [p.f for p in problems[lo: lo + batch_size]], opts):
            best = best_answer(ranked)
            ok += bool(best and best.verified)
    return ok / max(1, len(problems))


def save_state(path, model, opt, step, args, elapsed, history, mix):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                "args": vars(args), "config": asdict(model.config), "history": history,
                "mix": format_mix(mix), "cooling": in_cooldown(step, elapsed, args)}, tmp)
    os.replace(tmp, path)


def segment(args, step: int, elapsed: float) -> dict:
    """What this invocation trains with, from where it starts; its end is filled in as it goes."""
    return {"from_step": step, "to_step": step, "from_minutes": round(elapsed / 60, 1),
            "to_minutes": round(elapsed / 60, 1), "mix": args.mix, "adaptive": args.adaptive, "data": args.data,
            "minutes": args.minutes, "max_steps": args.max_steps, "lr": args.lr, "cooldown": args.cooldown,
            "batch_tokens": args.batch_tokens, "small_share": args.small_share, "threads": torch.get_num_threads(), "device": args.device,
            "init": args.init, "resumed_from": getattr(args, "resumed_from", None)}


def history_until(history: list[dict], seg: dict, step: int, elapsed: float, mix=None) -> list[dict]:
    """Every earlier invocation of this run plus the current one up to `step` (resumes change the recipe)."""
    now = dict(seg, to_step=step, to_minutes=round(elapsed / 60, 1))
    if mix is not None:
        now["mix_now"] = format_mix(mix)
    return history + [now]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train the polynomial-decomposition GPT.")
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--prompt-format", default=None, choices=PROMPT_FORMATS,
                    help="how f is written in the prompt (default: the preset's); fixed once a run has started")
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
    ap.add_argument("--batch-tokens", type=int, default=8192)
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
    if args.max_steps is None:
        args.max_steps = 0 if args.minutes else 4000
    if not args.max_steps and not args.minutes:
        ap.error("give a budget: --max-steps N and/or --minutes M")
    if not 0.0 <= args.cooldown < 1.0:
        ap.error("--cooldown must be in [0, 1)")
    args.device = str(apply_runtime_args(ap, args))
    return args


def build_model(args, st: dict | None) -> GPT:
    """A fresh model from --preset (and --prompt-format), or the resume state's own config."""
    if st is None:
        cfg = PRESETS[args.preset]
        if args.prompt_format and args.prompt_format != cfg.prompt_format:
            cfg = replace(cfg, prompt_format=args.prompt_format, vocab_size=0)
        return GPT(cfg)
    cfg = config_from_dict(st["config"])
    if args.prompt_format and args.prompt_format != cfg.prompt_format:
        raise SystemExit(f"error: this run reads prompts as {cfg.prompt_format!r}; --prompt-format cannot change it")
    model = GPT(cfg)
    load_state(model, st["model"], source="resume state")
    return model


def load_resume_state(args) -> dict | None:
    """state.pt, or stable.pt when state.pt is inside a cool-down that the new budget moves later."""
    state_path, stable_path = (os.path.join(args.run_dir, n) for n in ("state.pt", "stable.pt"))
    if not os.path.exists(state_path):
        raise SystemExit(f"error: nothing to resume: no {state_path}")
    st = torch.load(state_path, map_location="cpu", weights_only=True)
    if st.get("cooling") and os.path.exists(stable_path):
        stable = torch.load(stable_path, map_location="cpu", weights_only=True)
        if not in_cooldown(stable["step"], stable["elapsed"], args) and not in_cooldown(st["step"], st["elapsed"], args):
            log.info(f"the new budget ends later: continuing from {stable_path} (step {stable['step']}, before the "
                     f"cool-down of the last release); steps {stable['step']}..{st['step']} are set aside")
            args.resumed_from = f"stable.pt at step {stable['step']} (cool-down to step {st['step']} set aside)"
            return dict(stable, history=st.get("history", []))  # the released cool-down stays on record
    args.resumed_from = f"state.pt at step {st['step']}"
    return st


@torch.inference_mode()
def answer_loss(model: GPT, problems: list[Problem]) -> float:
    """Mean cross-entropy per answer token, teacher-forced (a smooth curve while accuracy is still 0)."""
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in make_batch(problems, model.config.prompt_format))
    select = y != -1
    return F.cross_entropy(model(x, select=select).float(), y[select]).item()


def validate(model: GPT, pairs, args, step: int) -> dict[tuple[int, int], tuple[float, float]]:
    """(greedy verified accuracy, answer loss) per pair on fresh problems."""
    model.eval()
    out = {pair: (verified_accuracy(model, probs), answer_loss(model, probs))
           for pair, probs in validation_problems(pairs, args.eval_n, step).items()}
    model.train()
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.makedirs(args.run_dir, exist_ok=True)
    state_path, stable_path = (os.path.join(args.run_dir, n) for n in ("state.pt", "stable.pt"))

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    st, init_meta = None, None
    if args.init:  # the checkpoint's own config, not --preset
        try:
            model, init_meta = load_checkpoint(args.init, "cpu")
        except CheckpointError as e:
            raise SystemExit(f"error: {e}") from None
    else:
        st = load_resume_state(args) if args.resume else None
        model = build_model(args, st)
    model.to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    step, elapsed, history, mix = 0, 0.0, [], parse_mix(args.mix)
    if st is not None:
        opt.load_state_dict(st["opt"])  # moves the moments to the parameters' device
        step, elapsed, history = st["step"], st["elapsed"], st.get("history", [])
        args.warm_from = st["args"].get("warm_from", 0)
        if args.adaptive and st.get("mix"):
            mix = parse_mix(st["mix"])  # the adapted mix carries on
        log.info(f"resumed at step {step} ({elapsed / 60:.1f} min trained); {progress(step, elapsed, args):.0%} "
                 f"of this budget done, lr now {lr_at(step, elapsed, args):.2e}")
    if init_meta is not None:
        step, elapsed = int(init_meta.get("steps", 0)), 60.0 * float(init_meta.get("train_minutes", 0.0))
        history, args.warm_from = list(init_meta.get("history", [])), step
        log.info(f"initialised from {args.init} at step {step} ({elapsed / 60:.1f} min trained); fresh optimizer, "
                 f"warm-up over {args.warmup} steps to lr {lr_at(step + args.warmup, elapsed, args):.2e}")
    fmt = model.config.prompt_format
    seg = segment(args, step, elapsed)
    seg["prompt_format"] = fmt
    batches = Batches(mix, args.batch_tokens, not args.no_canonical, args.seed + step, fmt, args.data,
                      args.small_share)
    log.info(f"model: {model.num_params():,} parameters, prompt format {fmt}; mix {format_mix(mix)}")
    train_loop(args, model, opt, batches, device, step, elapsed, lambda s, e: history_until(history, seg, s, e,
                                                                                           batches.mix),
               state_path, stable_path)


def train_loop(args, model, opt, batches, device, step, elapsed, hist, state_path, stable_path) -> None:
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    log_fh = open(os.path.join(args.run_dir, "log.csv"), "a", newline="")
    val_fh = open(os.path.join(args.run_dir, "val.csv"), "a", newline="")
    log_w, val_w = csv.writer(log_fh), csv.writer(val_fh)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    save = lambda path: save_state(path, model, opt, step, args, elapsed, hist(step, elapsed), batches.mix)
    # With a time budget the bar counts training minutes; otherwise steps.
    bar = tqdm(total=round(args.minutes, 1) if args.minutes else args.max_steps, desc="train", dynamic_ncols=True,
               initial=round(elapsed / 60, 1) if args.minutes else step, unit="min" if args.minutes else "step",
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} min [{elapsed}<{remaining}{postfix}]"
               if args.minutes else None)
    last_save = time.time()
    stable_saved = in_cooldown(step, elapsed, args)  # resumed inside the cool-down: stable.pt is already there
    model.train()
    try:
        while progress(step, elapsed, args) < 1.0 and not stop["now"]:
            if not stable_saved and in_cooldown(step, elapsed, args):
                save(stable_path)  # the state a later, bigger budget continues from
                stable_saved = True
            t0 = time.time()
            x, y = (t.to(device) for t in make_batch(batches.next(), model.config.prompt_format))
            for g in opt.param_groups:
                g["lr"] = lr = lr_at(step, elapsed, args)
            with autocast():
                select = y != -1  # the head runs only where there is a target: the answer positions
                logits = model(x, select=select)
                loss = F.cross_entropy(logits.float(), y[select])
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
                result = validate(model, list(batches.mix), args, step)
                accs = {pair: acc for pair, (acc, _) in result.items()}
                for (i, j), (acc, loss_ij) in result.items():
                    val_w.writerow([step, f"{elapsed:.1f}", f"{i}_{j}", f"{acc:.4f}", f"{batches.mix[(i, j)]:.4f}",
                                    f"{loss_ij:.4f}"])
                val_fh.flush()
                log.info(f"step {step}: greedy verified " + " ".join(f"{i}_{j} {a:.0%}" for (i, j), a in accs.items()))
                if args.adaptive and batches.pool is None:
                    batches.mix = adapt_mix(batches.mix, accs, args.floor)
                    log.info(f"mix now {format_mix(batches.mix)}")
                if args.out:  # keep the exported model current, so a cut run still leaves usable weights
                    export(model, args, step, elapsed, finished, hist(step, elapsed))
                    model.train()
            if time.time() - last_save > args.save_every:
                save(state_path)
                log_fh.flush()
                last_save = time.time()
    finally:
        bar.close()
        save(state_path)
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
