"""Text for the page: polynomials as ASCII and LaTeX, live beam tables, ranked answers. Pure functions."""
from __future__ import annotations

import re
from typing import Sequence

import engine

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
BEAM_HEADERS = ["beam", "tokens", "Q so far", "score", "parent", "state"]
END_LABEL = "END"  # the end token ⁇ as the page shows it
BEST_MARK = "★"  # the table's mark for the beam on the best answer's path
CUT = "cut at max new tokens"  # a beam still live when the length cap stopped its problem


def ascii_poly(p: engine.Poly, var: str = "a") -> str:
    """3a^2 - 2a + 1: what a user types, and what the parser reads back."""
    return re.sub(r"\^\{(\d+)\}", r"^\1", engine.to_latex(p, var))


def answer_ids(ids: Sequence[int]) -> tuple[int, ...]:
    """Generated ids without the END token."""
    ids = tuple(ids)
    return ids[:-1] if ids and ids[-1] == engine.SEP_ID else ids


def q_so_far(ids: Sequence[int]) -> str:
    """Q in math notation once the prefix tokens form a whole expression, else an ellipsis."""
    body = answer_ids(ids)
    if not body:
        return ""
    try:
        return engine.to_unicode(engine.from_prefix(engine.decode_text(body)))
    except ValueError:
        return "…"


def token_label(token: int) -> str:
    """A token as the page shows it: the END token (⁇) as END, others as their vocabulary symbol."""
    return END_LABEL if token == engine.SEP_ID else engine.decode_text((token,))


def tokens_text(ids: Sequence[int]) -> str:
    return " ".join(token_label(t) for t in ids)


def best_path(steps: Sequence[engine.Step], best: Sequence[int] | None, problem: int = 0) -> dict[int, int]:
    """step -> index of the beam on the best answer's path at that step (the first finished beam whose answer
    is `best`, and its ancestors); empty when no finished beam gives `best`."""
    if best is None:
        return {}
    best = tuple(best)
    for s in range(len(steps)):
        for k, b in enumerate(steps[s].beams):
            if b.problem == problem and b.finished and answer_ids(b.ids) == best:
                path = {s: k}
                while s > 0 and steps[s].beams[k].parent >= 0:
                    s, k = s - 1, steps[s].beams[k].parent
                    path[s] = k
                return path
    return {}


def ended(b: engine.Beam) -> bool:
    """The beam emitted END (a beam cut by the length cap may be marked finished without it)."""
    return b.finished and bool(b.ids) and b.ids[-1] == engine.SEP_ID


def beam_rows(step: engine.Step, problem: int = 0, on_path: int | None = None) -> list[list]:
    """One row per beam of a step, best score first: index (parents refer to it), tokens, Q when complete,
    score, parent, state. The beam `on_path` (the best answer's path at this step) is marked with BEST_MARK."""
    rows = []
    cut = (problem, "max_new") in step.stops  # the live beams of a problem stopped by the length cap
    for k, b in sorted(enumerate(step.beams), key=lambda kb: -kb[1].score):
        if b.problem != problem:
            continue
        state = "finished" if ended(b) else CUT if cut or b.finished else "live"
        if k == on_path:
            state = f"{BEST_MARK} best answer" if b.finished else f"{BEST_MARK} on the best answer's path"
        rows.append([k, tokens_text(b.ids), q_so_far(b.ids), round(b.score, 4), "" if b.parent < 0 else b.parent,
                     state])
    return rows


def step_status(step: engine.Step, total_steps: int | None = None) -> str:
    done = sum(map(ended, step.beams))
    live = len(step.beams) - done
    of = f" of at most {total_steps}" if total_steps else ""
    what = f"{live} live beam{'s' * (live != 1)}"
    if any(reason == "max_new" for _, reason in step.stops):
        what = f"{live} beam{'s' * (live != 1)} {CUT} (no END)"
    return f"Step **{step.step}**{of}: {what}, {done} finished at this step, {step.elapsed_ms:.2f} ms"


def _answer_line(rank: int, a: engine.Answer) -> str:
    if a.q is None:
        tokens = a.prefix or "(nothing)"
        return f"{rank}. ✗ `{tokens}` — {a.reason or 'does not parse'} · score {a.score:.3f}"
    q = f"$Q(a) = {engine.to_latex(a.q)}$"
    if a.verified:
        p = engine.to_latex(a.outer, "Q")
        return f"{rank}. ✓ {q} &nbsp; gives &nbsp; $f = {p}$ · score {a.score:.3f}"
    return f"{rank}. ✗ {q} — {a.reason} · score {a.score:.3f}"


def answers_markdown(f: engine.Poly, answers: Sequence[engine.Answer]) -> str:
    """The ranked answers with ✓/✗ from verification and the recovered P (f = P(Q))."""
    head = f"$f(a) = {engine.to_latex(f)}$\n\n"
    if not answers:
        return head + "The decoder returned no answer."
    n_ok = sum(a.verified for a in answers)
    best = next((a for a in answers if a.verified), None)
    if best is None:
        verdict = f"**✗ No verified answer** among {len(answers)}."
    else:
        verdict = f"**✓ Verified:** $Q(a) = {engine.to_latex(best.q)}$ ({n_ok} of {len(answers)} answers verify)."
    return head + verdict + "\n\n" + "\n".join(_answer_line(i + 1, a) for i, a in enumerate(answers))


def options_summary(opts: engine.DecodeOptions) -> str:
    """A short label for a configuration: decoder, width, cache, beam cache handling, attention."""
    if opts.decoder == "beam":
        head = f"beam {opts.width}, {opts.beam_cache}"
    elif opts.decoder == "sample":
        head = f"sample T={opts.temperature:g}" + (f", best of {opts.samples}" if opts.samples > 1 else "")
    elif opts.decoder == "cascade":
        head = f"cascade {opts.cascade}"
    else:
        head = "greedy"
    if opts.stop_on_verified and opts.decoder != "greedy":
        head += ", stop at the first verified"
    tail = ((", compiled" if opts.compile != "off" else "") + (f", {opts.linear} linears" if opts.linear != "aten" else "")
            + (", fused C++ step" if opts.step == "fused" else ", fused C++ step and attention"
               if opts.step == "native" else ""))
    return f"{head}, cache {opts.cache}, {opts.attention}{tail}"
