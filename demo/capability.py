"""What the served model can solve, in words for the page: its verified accuracy per degree pair (from the
evaluation JSON committed with the weights, engine.capability), a note on a typed input's likely pair, and the
one verdict per input that reconciles the model's answer with the classical algorithm's."""
from __future__ import annotations

import engine

EVALUATE = "python -m engine.evaluate --data <files> --json > docs/model/eval_<set>_<decoder>.json"


def percent(x: float | None) -> str:
    """Whole percents, with one decimal below 10% and near 100% (99.6% must not read as 100%)."""
    if x is None:
        return ""
    return f"{x * 100:.0f}%" if x in (0.0, 1.0) or 0.1 <= x < 0.995 else f"{x * 100:.1f}%"


def capability_table(cap: engine.Capability) -> str:
    """Markdown: per degree pair, the verified accuracy of each evaluated decoder, on both problem sets."""
    if not cap:
        return ("**What this model solves:** no evaluation of these weights is recorded (an eval JSON in "
                f"docs/model whose `weights_sha256` is this checkpoint's). Measure it with `{EVALUATE}`.")
    cols = [(which, d) for which in engine.CAPABILITY_SETS for d in cap.decoders(which)]
    head = "| deg P, deg Q | " + " | ".join(
        f"{engine.decoder_label(d)}{' (small)' if which == 'small' else ''}" for which, d in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for pair in engine.ALL_PAIRS:
        lines.append(f"| {pair[0]}, {pair[1]} | " + " | ".join(percent(cap.get(pair, d, which)) for which, d in cols)
                     + " |")
    n = max(cap.problems.values(), default=0)
    sets = "the training distribution" + (", and (small) on small coefficients, P and Q in [-5, 5]"
                                          if cap.decoders("small") else "")
    return (f"**What this model solves:** verified accuracy on {n} fresh problems per pair: {sets}; from "
            f"{', '.join(f'`{s}`' for s in cap.sources)}.\n\n" + "\n".join(lines))


def pair_summary(cap: engine.Capability, pair: tuple[int, int]) -> str:
    """"greedy 75%, beam 10 99%" for one pair on the training distribution; "" when not evaluated."""
    return ", ".join(f"{engine.decoder_label(d)} {percent(a)}" for d in cap.decoders()
                     if (a := cap.get(pair, d)) is not None)


def capability_line(cap: engine.Capability, least: float = 0.05) -> str:
    """One line for an empty input: the pairs the model solves at least `least` of the time, and the rest."""
    if not cap:
        return "No evaluation of these weights is recorded, so what the model solves is unknown."
    solved = [p for p in engine.ALL_PAIRS if (cap.best(p) or ("", 0.0))[1] >= least]
    rest = [p for p in engine.ALL_PAIRS if p not in solved and cap.best(p) is not None]
    line = "This model verifies (deg P, deg Q) = " + (
        "; ".join(f"{p}: {pair_summary(cap, p)}" for p in solved) or f"no pair {least:.0%} of the time or more")
    if rest:
        line += f"; under {least:.0%} on {', '.join(map(str, rest))}"
    return line + "."


def input_note(cap: engine.Capability, f: engine.Poly) -> str:
    """What the model is likely to do with f, from its degree: the pairs it may belong to and their accuracy."""
    n = engine.degree(f)
    pairs = engine.pairs_for_degree(n, engine.ALL_PAIRS)
    if not pairs:
        return (f"deg f = {n}: no trained degree pair gives this degree (the model learned deg P and deg Q from 2 "
                f"to 4, deg f = deg P · deg Q), so a verified answer is unlikely.")
    if not cap:
        return f"deg f = {n}: (deg P, deg Q) = {' or '.join(map(str, pairs))}; no evaluation of these weights is recorded."
    parts = [f"{p}: {pair_summary(cap, p) or 'not evaluated'}" for p in pairs]
    best = max((cap.best(p) or ("", 0.0))[1] for p in pairs)
    hint = " The model rarely solves these." if best < 0.05 else ""
    return f"deg f = {n}, so (deg P, deg Q) = " + "; ".join(parts) + " verified on fresh problems." + hint


def combined_verdict(answers, parts: list) -> str:
    """One verdict per input from the model's ranked answers and the classical decomposition's parts
    (a single part: f has no decomposition)."""
    best = next((a for a in answers if a.verified), None)
    if best is not None:
        return f"### ✓ Model verified Q(a) = {engine.to_unicode(best.q)}"
    if len(parts) > 1:
        return (f"### ✗ Model missed a decomposition the classical algorithm found: Q(a) = "
                f"{engine.to_unicode(parts[-1])}")
    return ("### ○ No decomposition exists\nThe classical algorithm finds none, so no answer of the model can "
            "verify.")
