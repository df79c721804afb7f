"""Plotly figure builders: pure functions from engine dataclasses or plain rows to a go.Figure."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import plotly.graph_objects as go

import engine

from .formatting import answer_ids, q_so_far, token_label

COLORS = {"live": "#3b6fb6", "pruned": "#dde1e7", "verified": "#2e9e44", "failed": "#d1453b",
          "finished": "#8a56c2", "best": "#f08c00", "root": "#555555", "accepted": "#0b7a2a"}
PHASE_COLORS = {"prefill": "#3b6fb6", "decode_step": "#6fa8dc", "cache_clone": "#d1453b", "cache_reorder": "#f08c00",
                "beam_select": "#8a56c2", "verify": "#2e9e44", "other": "#b0b4ba"}
COMPACT_LEAVES = 120  # above this many leaves the full tree is a hairball: pruned branches are collapsed
ROW_PX = 26  # vertical pixels per leaf: 22 px nodes never overlap
MAX_TREE_HEIGHT = 4000
Node = tuple[int, int]  # (step index, beam index in that step)
ROOT: Node = (-1, 0)
NODE_NAMES = {"live": "live beam", "pruned": "pruned beam", "finished": "finished (END)",
              "verified": "finished, verified", "failed": "finished, not verified",
              "accepted": "accepted (search stopped)"}  # the legend's words for each kind of node


def _tree(steps: Sequence[engine.Step], upto: int, problem: int) -> dict[Node, list[Node]]:
    """Children of every node up to step `upto`; the virtual root (the prompt) parents step 0."""
    children: dict[Node, list[Node]] = {ROOT: []}
    for s in range(upto + 1):
        for k, b in enumerate(steps[s].beams):
            if b.problem != problem:
                continue
            parent = ROOT if s == 0 or b.parent < 0 else (s - 1, b.parent)
            children.setdefault(parent, []).append((s, k))
            children.setdefault((s, k), [])
    return children


def _subtree_best(children, steps, kept: dict[Node, bool]) -> dict[Node, float]:
    """Per node, the best score among the beams that end its subtree and still lead somewhere (alive at the
    cut or finished), or among all its beams when none does: what the vertical order sorts by."""
    best: dict[Node, float] = {}

    def visit(n: Node) -> float:
        kids = children.get(n, [])
        scores = [visit(c) for c in kids]
        own = steps[n[0]].beams[n[1]].score if n[0] >= 0 else 0.0
        alive = [sc for c, sc in zip(kids, scores) if kept[c]]
        best[n] = max(alive or scores or [own]) if kids else own
        return best[n]

    visit(ROOT)
    return best


def _kept(children, steps, upto: int) -> dict[Node, bool]:
    """Whether each node still leads somewhere: to a beam alive at `upto` or to a finished one. The rest are
    pruned branches."""
    kept: dict[Node, bool] = {}

    def visit(n: Node) -> bool:
        down = [visit(c) for c in children.get(n, [])]  # every child visited: no short-circuit
        s, k = n
        beam = steps[s].beams[k] if s >= 0 else None
        kept[n] = any(down) or (beam is not None and (beam.finished or s == upto))
        return kept[n]

    visit(ROOT)
    return kept


def _layout(children, order_key, collapsed: set[Node]) -> dict[Node, float]:
    """y of every drawn node: a tidy tree whose leaves are numbered top down in depth-first order, children
    taken best first (order_key), so the best beam's path runs along the top. Nodes in `collapsed` are drawn
    without their subtrees."""
    y: dict[Node, float] = {}
    leaves = 0

    def visit(n: Node) -> None:
        nonlocal leaves
        kids = [] if n in collapsed else sorted(children.get(n, []), key=order_key)
        for c in kids:
            visit(c)
        if kids:
            y[n] = sum(y[c] for c in kids) / len(kids)
        else:
            y[n] = float(leaves)
            leaves += 1

    visit(ROOT)
    return y


def _best_path(children, steps, best: tuple[int, ...] | None) -> set[Node]:
    if best is None:
        return set()
    parent = {c: p for p, kids in children.items() for c in kids}
    for n in children:
        s, k = n
        if s >= 0 and steps[s].beams[k].finished and answer_ids(steps[s].beams[k].ids) == best:
            path = {n}
            while n in parent:
                n = parent[n]
                path.add(n)
            return path
    return set()


def _node_kind(beam: engine.Beam, kept: bool, verified: set, failed: set) -> str:
    if beam.accepted:
        return "accepted"
    if beam.finished:
        ids = answer_ids(beam.ids)
        return "verified" if ids in verified else "failed" if ids in failed else "finished"
    return "live" if kept else "pruned"


def _token_logprob(steps, n: Node) -> float:
    """log p(last token | the beam's prefix): its score minus its parent's (the score is a sum of log-probs)."""
    s, k = n
    b = steps[s].beams[k]
    parent = steps[s - 1].beams[b.parent].score if s > 0 and b.parent >= 0 else 0.0
    return b.score - parent


def _pct(p: float) -> str:
    return f"{p:.1%}" if p >= 1e-3 else f"{p:.1e}"


def _hover(steps, n: Node, siblings: set[int]) -> str:
    """Step, beam, the token and its probability, the score, Q so far, and the top tokens of the same
    distribution that no beam took (the alternatives that lost)."""
    s, k = n
    b = steps[s].beams[k]
    lp = _token_logprob(steps, n)
    parent = "prompt" if b.parent < 0 else b.parent
    text = (f"step {s} · beam {k} · parent {parent}<br>token <b>{token_label(b.ids[-1])}</b>: "
            f"p = {_pct(math.exp(lp))} (log-prob {lp:.3f})<br>tokens: {' '.join(token_label(t) for t in b.ids)}"
            f"<br>Q so far: {q_so_far(b.ids)}<br>score {b.score:.4f}{' · finished' if b.finished else ''}")
    lost = [(t, p) for t, p in b.alternatives if t not in siblings]
    if b.alternatives:
        text += "<br>top alternatives that lost: " + (
            ", ".join(f"{token_label(t)} {_pct(math.exp(p))}" for t, p in lost) if lost else "none (all taken)")
    return text


def _add_edges(fig: go.Figure, children, y, kept, path) -> None:
    edges: dict[str, tuple[list, list]] = {"kept": ([], []), "pruned": ([], []), "best": ([], [])}
    for p, kids in children.items():
        for c in kids:
            if c not in y or p not in y:
                continue
            xs, ys = edges["best" if c in path and p in path else "kept" if kept[c] else "pruned"]
            xs += [p[0], c[0], None]
            ys += [y[p], y[c], None]
    styles = {"kept": dict(color="#7a8699", width=1.2), "pruned": dict(color=COLORS["pruned"], width=1, dash="dot"),
              "best": dict(color=COLORS["best"], width=3)}
    names = {"kept": "branch that lives on", "pruned": "pruned branch", "best": "best answer's path"}
    for kind, (xs, ys) in edges.items():
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=styles[kind], hoverinfo="skip", name=names[kind],
                                     legendgroup=kind))


def _add_nodes(fig: go.Figure, steps, children, y, kept, path, ok: set, bad: set) -> None:
    """One trace per kind of node (live, pruned, finished, verified, failed); the best path is outlined."""
    parent_of = {c: p for p, kids in children.items() for c in kids}
    groups: dict[str, tuple[list, list, list, list, list]] = {}
    for n in y:
        if n == ROOT:
            continue
        s, k = n
        b = steps[s].beams[k]
        xs, ys, labels, hovers, outline = groups.setdefault(_node_kind(b, kept[n], ok, bad), ([], [], [], [], []))
        xs.append(s)
        ys.append(y[n])
        labels.append(token_label(b.ids[-1]))
        outline.append(3 if n in path else 0)
        siblings = {steps[c[0]].beams[c[1]].ids[-1] for c in children[parent_of[n]]}
        hovers.append(_hover(steps, n, siblings))
    fig.add_trace(go.Scatter(x=[-1], y=[y[ROOT]], mode="markers+text", text=["f"], name="prompt",
                             marker=dict(size=20, color=COLORS["root"]), textfont=dict(color="white"),
                             hovertext=["the prompt: f ⁇ (the model writes Q after it)"], hoverinfo="text"))
    symbols = {"verified": "square", "failed": "square", "accepted": "star"}
    for kind in ("live", "pruned", "finished", "verified", "failed", "accepted"):
        if kind not in groups:
            continue
        xs, ys, labels, hovers, outline = groups[kind]
        # pruned nodes: dark text on a light fill, so their tokens stay readable
        text_color = "#333333" if kind == "pruned" else "white"
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers+text", text=labels, name=NODE_NAMES[kind], hovertext=hovers,
            hoverinfo="text", textfont=dict(color=text_color, size=9), legendgroup=kind,
            marker=dict(size=26 if kind == "accepted" else 22, color=COLORS[kind], symbol=symbols.get(kind, "circle"),
                        line=dict(width=outline, color=COLORS["best"]))))


def _add_collapsed(fig: go.Figure, children, y, collapsed: set[Node]) -> None:
    """Compact mode: a pruned subtree is drawn as its first node only; a grey tag beside it counts the
    nodes hidden behind it."""
    xs, ys, labels, hovers = [], [], [], []
    for n in collapsed:
        hidden, todo = 0, list(children.get(n, []))
        while todo:
            c = todo.pop()
            hidden += 1
            todo += children.get(c, [])
        if hidden:
            xs.append(n[0] + 0.42)
            ys.append(y[n])
            labels.append(f"+{hidden}")
            hovers.append(f"{hidden} pruned node{'s' * (hidden != 1)} collapsed behind this one")
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="text", text=labels, name="collapsed pruned nodes (+n)",
                                 textfont=dict(color="#6b7480", size=10), hovertext=hovers, hoverinfo="text"))


def stop_step(steps: Sequence[engine.Step], problem: int = 0) -> int | None:
    """The index of the step at which the problem stopped because an answer was accepted, or None."""
    for k, s in enumerate(steps):
        if (problem, "verified") in s.stops:
            return k
    return None


def _mark_stop(fig: go.Figure, steps, upto: int, problem: int) -> None:
    """A dashed line at the step where the search stopped on a verified answer, labelled."""
    k = stop_step(steps, problem)
    if k is None or k > upto:
        return
    fig.add_vline(x=k, line=dict(color=COLORS["accepted"], dash="dash", width=2))
    fig.add_annotation(x=k, y=1.0, yref="paper", yanchor="bottom", showarrow=False, name="stop",
                       text=f"stopped at step {k}: verified answer", font=dict(color=COLORS["accepted"]))


def beam_tree(steps: Sequence[engine.Step], upto: int | None = None, best: Sequence[int] | None = None,
              verified: Sequence[Sequence[int]] = (), failed: Sequence[Sequence[int]] = (),
              problem: int = 0, compact: bool | None = None) -> go.Figure:
    """Tokens as nodes (END for the end token), edges to parents, the best beams at the top, pruned branches
    faded, the token's probability, the score and the losing alternatives on hover.

    upto: last step shown (replay); best: answer ids (no END) whose path is highlighted;
    verified / failed: answer ids that passed or failed verification, to color finished beams;
    compact: collapse pruned subtrees to their first node (None: only when the full tree would have more
    than COMPACT_LEAVES leaves)."""
    fig = go.Figure()
    if not steps:
        return _empty(fig, "The beam tree appears when a search runs.")
    upto = len(steps) - 1 if upto is None else max(0, min(int(upto), len(steps) - 1))
    children = _tree(steps, upto, problem)
    kept = _kept(children, steps, upto)
    path = _best_path(children, steps, tuple(best) if best is not None else None)
    if compact is None:
        compact = sum(1 for kids in children.values() if not kids) > COMPACT_LEAVES
    collapsed = {c for p, kids in children.items() for c in kids if kept[p] and not kept[c]} if compact else set()
    sub_best = _subtree_best(children, steps, kept)
    y = _layout(children, lambda c: (c not in path, not kept[c], -sub_best[c]), collapsed)
    _add_edges(fig, children, y, kept, path)
    _add_nodes(fig, steps, children, y, kept, path, {tuple(v) for v in verified}, {tuple(v) for v in failed})
    _add_collapsed(fig, children, y, collapsed)
    _mark_stop(fig, steps, upto, problem)
    leaves = sum(1 for n in y if not any(c in y for c in children.get(n, [])))
    mode = " (compact: pruned branches collapsed)" if compact else ""
    fig.update_layout(title=f"Beam tree, steps 0–{upto}, best score at the top{mode}",
                      height=min(MAX_TREE_HEIGHT, max(360, ROW_PX * leaves + 220)),
                      margin=dict(l=20, r=20, t=120, b=40), plot_bgcolor="white", hoverlabel=dict(align="left"),
                      xaxis=dict(title="step", dtick=1, zeroline=False, gridcolor="#eef0f3"),
                      yaxis=dict(visible=False, autorange="reversed"),
                      legend=dict(orientation="h", x=0, y=1, yanchor="bottom", yref="paper"))
    return fig


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False), height=260, plot_bgcolor="white")
    return fig


def step_latency(steps: Sequence[engine.Step], prefill_ms: float | None = None) -> go.Figure:
    """Wall time of every decode step (step 0 picks the first token from the prefill)."""
    fig = go.Figure()
    if not steps:
        return _empty(fig, "Per-step latency appears when a search runs.")
    live = [sum(not b.finished for b in s.beams) for s in steps]
    fig.add_trace(go.Bar(x=[s.step for s in steps], y=[s.elapsed_ms for s in steps], marker_color=PHASE_COLORS[
        "decode_step"], customdata=[[n, s.cache_bytes / 1024] for n, s in zip(live, steps)],
        hovertemplate="step %{x}: %{y:.2f} ms<br>%{customdata[0]} live beams<br>cache %{customdata[1]:.0f} KiB"
                      "<extra></extra>", name="step"))
    total = sum(s.elapsed_ms for s in steps)
    title = f"Per-step latency: {len(steps)} steps, {total:.1f} ms"
    if prefill_ms is not None:
        title += f" (prefill {prefill_ms:.1f} ms)"
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="ms", height=300, plot_bgcolor="white",
                      margin=dict(l=50, r=20, t=50, b=40))
    return fig


def latency_bars(rows: Sequence[Mapping]) -> go.Figure:
    """Mean latency per configuration with min–max spread; rows: label, mean_ms, min_ms, max_ms, speedup."""
    fig = go.Figure()
    if not rows:
        return _empty(fig, "Run a comparison to see latencies.")
    labels = [r["label"] for r in rows]
    mean = [r["mean_ms"] for r in rows]
    fig.add_trace(go.Bar(
        x=labels, y=mean, marker_color=COLORS["live"], text=[f"{r['speedup']:.2f}x" for r in rows],
        textposition="outside", cliponaxis=False, error_y=dict(type="data", symmetric=False,
                                            array=[r["max_ms"] - r["mean_ms"] for r in rows],
                                            arrayminus=[r["mean_ms"] - r["min_ms"] for r in rows]),
        hovertemplate="%{x}<br>mean %{y:.2f} ms<extra></extra>", name="latency"))
    # log scale: one slow configuration (V1) would otherwise flatten every other bar
    fig.update_layout(title="Latency per configuration (mean, min–max; label: speedup over the first)",
                      yaxis=dict(title="ms (log scale)", type="log"), height=360, plot_bgcolor="white",
                      margin=dict(l=50, r=20, t=50, b=80))
    return fig


def phase_stack(phases: Mapping[str, Mapping[str, float]], source: str = "") -> go.Figure:
    """Stacked milliseconds per phase for each configuration; phases: label -> {phase: ms}; `source` says
    which run the phases come from (shown under the title)."""
    fig = go.Figure()
    if not phases:
        return _empty(fig, "Phase breakdown appears after a comparison.")
    labels = list(phases)
    order = list(PHASE_COLORS) + sorted({p for l in labels for p in phases[l]} - set(PHASE_COLORS))
    names = [p for p in order if any(phases[l].get(p, 0) for l in labels)]
    for p in names:
        fig.add_trace(go.Bar(x=labels, y=[phases[l].get(p, 0.0) for l in labels], name=p,
                             marker_color=PHASE_COLORS.get(p), hovertemplate=f"{p}: %{{y:.2f}} ms<extra></extra>"))
    title = "Where the time goes, per configuration" + (f"<br><sup>{source}</sup>" if source else "")
    fig.update_layout(barmode="stack", title=title,
                      yaxis_title="ms", height=360, plot_bgcolor="white", margin=dict(l=50, r=20, t=50, b=80))
    return fig


def profile_phases(summary: Mapping) -> go.Figure:
    """A recording's exclusive time per phase (profiler summary's "phases": {phase: {ms, calls, share}})."""
    fig = go.Figure()
    phases = {p: v for p, v in summary.get("phases", {}).items() if v.get("ms", 0) > 0}
    if not phases:
        return _empty(fig, "No phase time recorded.")
    names = list(phases)
    fig.add_trace(go.Bar(
        y=names, x=[phases[p]["ms"] for p in names], orientation="h",
        marker_color=[PHASE_COLORS.get(p, COLORS["root"]) for p in names],
        text=[f"{phases[p].get('share', 0) * 100:.1f}% · {phases[p].get('calls', 0)} calls" for p in names],
        textposition="auto", hovertemplate="%{y}: %{x:.2f} ms<extra></extra>"))
    fig.update_layout(title=f"Phase breakdown: {summary.get('total_ms', 0):.1f} ms recorded", xaxis_title="ms",
                      yaxis=dict(autorange="reversed"), height=320, plot_bgcolor="white",
                      margin=dict(l=110, r=20, t=50, b=40))
    return fig


def step_timeline(summary: Mapping) -> go.Figure:
    """Per-step wall time of a recorded run with the number of live beams on a second axis."""
    fig = go.Figure()
    rows = summary.get("steps", [])
    if not rows:
        return _empty(fig, "No decode steps recorded.")
    xs = [r["step"] for r in rows]
    fig.add_trace(go.Bar(x=xs, y=[r["ms"] for r in rows], name="step ms", marker_color=PHASE_COLORS["decode_step"],
                         hovertemplate="step %{x}: %{y:.2f} ms<extra></extra>"))
    fig.add_trace(go.Scatter(x=xs, y=[r.get("beams", 0) for r in rows], name="live beams", yaxis="y2",
                             mode="lines+markers", line=dict(color=COLORS["best"])))
    fig.update_layout(title="Per-step timeline", xaxis_title="step", yaxis_title="ms", height=320,
                      yaxis2=dict(title="live beams", overlaying="y", side="right", rangemode="tozero"),
                      plot_bgcolor="white", margin=dict(l=50, r=50, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


TRACE_LANES = ("step", "prefill", "decode_step", "cache_clone", "cache_reorder", "beam_select", "verify", "operators")


def trace_view(timeline: Mapping, empty: str = "Record a profile (or pick a run) to see its trace here.") -> go.Figure:
    """The recorded trace as a zoomable timeline (drag to zoom, double-click to reset): one lane per phase
    label, the profiler steps above them and the outermost operators below; timeline: engine's trace_timeline
    ({spans: [{lane, name, start_ms, ms}], total_ms, ops_dropped}). Plotly itself comes with Gradio's page,
    so the view needs no internet."""
    fig = go.Figure()
    spans = timeline.get("spans", [])
    if not spans:
        return _empty(fig, empty)
    lanes = [lane for lane in TRACE_LANES if any(sp["lane"] == lane for sp in spans)]
    colors = {**PHASE_COLORS, "step": "#9aa5b1", "operators": "#5c6773"}
    for lane in lanes:
        rows = [sp for sp in spans if sp["lane"] == lane]
        fig.add_trace(go.Bar(
            y=[lane] * len(rows), x=[sp["ms"] for sp in rows], base=[sp["start_ms"] for sp in rows], orientation="h",
            name=lane, marker=dict(color=colors.get(lane, COLORS["root"]), line=dict(width=0.5, color="white")),
            customdata=[[sp["name"], sp["start_ms"] + sp["ms"]] for sp in rows],
            hovertemplate="%{customdata[0]}<br>%{base:.3f} → %{customdata[1]:.3f} ms (%{x:.3f} ms)<extra></extra>"))
    note = f", {timeline['ops_dropped']} later operators not drawn" if timeline.get("ops_dropped") else ""
    fig.update_layout(title=f"Trace: {timeline.get('total_ms', 0):.1f} ms recorded{note} (drag to zoom, "
                            f"double-click to reset)",
                      barmode="overlay", height=120 + 38 * len(lanes), plot_bgcolor="white", dragmode="zoom",
                      xaxis=dict(title="ms since the recording began", gridcolor="#eef0f3", rangemode="tozero"),
                      yaxis=dict(categoryorder="array", categoryarray=list(reversed(lanes)), fixedrange=True),
                      margin=dict(l=110, r=20, t=50, b=40), showlegend=False)
    return fig


def top_operators(summary: Mapping, n: int = 12) -> go.Figure:
    """The operators with the most self time in a recording."""
    fig = go.Figure()
    rows = list(summary.get("top_ops", []))[:n]
    if not rows:
        return _empty(fig, "No operators recorded.")
    fig.add_trace(go.Bar(y=[r["op"] for r in rows], x=[r["self_ms"] for r in rows], orientation="h",
                         marker_color=COLORS["live"], customdata=[r.get("calls", 0) for r in rows],
                         hovertemplate="%{y}<br>self %{x:.2f} ms, %{customdata} calls<extra></extra>"))
    fig.update_layout(title="Top operators by self time", xaxis_title="ms", yaxis=dict(autorange="reversed"),
                      height=max(300, 24 * len(rows) + 100), plot_bgcolor="white",
                      margin=dict(l=180, r=20, t=50, b=40))
    return fig


def _grouped(rows: Sequence[Mapping], x: str, group: str, y: str, title: str, y_title: str,
             spread: tuple[str, str] | None = None) -> go.Figure:
    fig = go.Figure()
    for g in dict.fromkeys(r[group] for r in rows):
        sel = [r for r in rows if r[group] == g]
        err = None
        if spread:
            err = dict(type="data", symmetric=False, array=[r[spread[1]] - r[y] for r in sel],
                       arrayminus=[r[y] - r[spread[0]] for r in sel])
        fig.add_trace(go.Bar(x=[str(r[x]) for r in sel], y=[r[y] for r in sel], name=f"{group} {g}", error_y=err))
    # log scale: times that differ by 10-100x (V1 against V3) stay readable side by side
    fig.update_layout(barmode="group", title=title, yaxis=dict(title=f"{y_title} (log scale)", type="log"),
                      height=380, plot_bgcolor="white", margin=dict(l=50, r=20, t=50, b=60))
    return fig


def _sweep(rows: Sequence[Mapping]) -> go.Figure:
    """Speedup over no cache per (model, strategy): width across, prompt length down."""
    from plotly.subplots import make_subplots

    sizes = list(dict.fromkeys(r["model"] for r in rows))
    strategies = [k[2:] for k in rows[0] if k.startswith("x_")]
    fig = make_subplots(rows=len(sizes), cols=len(strategies), subplot_titles=[f"{s} / {t}" for s in sizes
                                                                               for t in strategies])
    for i, size in enumerate(sizes, 1):
        sel = [r for r in rows if r["model"] == size]
        widths = sorted({r["width"] for r in sel})
        lengths = sorted({r["prompt_tokens"] for r in sel})
        for j, strategy in enumerate(strategies, 1):
            z = [[next((r[f"x_{strategy}"] for r in sel if r["width"] == w and r["prompt_tokens"] == L), None)
                  for w in widths] for L in lengths]
            fig.add_trace(go.Heatmap(z=z, x=[str(w) for w in widths], y=[str(L) for L in lengths], zmid=1.0,
                                     colorscale="RdBu", showscale=i == j == 1, texttemplate="%{z:.2f}x",
                                     hovertemplate="width %{x}, prompt %{y}: %{z:.2f}x<extra></extra>"), i, j)
    fig.update_layout(title="Speedup over no cache (>1: the cache pays); width across, prompt tokens down",
                      height=260 * len(sizes) + 120, margin=dict(l=50, r=20, t=80, b=40))
    return fig


FAMILY_COLORS = {"greedy": "#555555", "beam": "#3b6fb6", "beam stop": "#2e9e44", "cascade": "#f08c00",
                 "cascade stop": "#d1453b", "best of": "#8a56c2"}
MODE_SYMBOLS = {"batched": "circle", "one at a time": "diamond"}


def strategy_family(label: str) -> str:
    """"beam 10 stop" -> "beam stop", "cascade greedy>10>64" -> "cascade", "best of 8 stop" -> "best of"."""
    if label.startswith("best of"):
        return "best of"
    head = label.split()[0]
    return f"{head} stop" if label.endswith(" stop") and head in ("beam", "cascade") else head


def frontier_chart(rows: Sequence[Mapping]) -> go.Figure:
    """The frontier suite's Pareto chart: verified accuracy against ms per problem (log), one panel per degree
    pair, colour by strategy family, symbol by mode; the Pareto front of each mode is a dashed line."""
    from plotly.subplots import make_subplots

    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    fig = make_subplots(rows=1, cols=len(pairs), subplot_titles=[f"({p.replace('_', ',')})" for p in pairs],
                        shared_yaxes=True, horizontal_spacing=0.04)
    shown = set()
    for col, pair in enumerate(pairs, 1):
        sel = [r for r in rows if r["pair"] == pair]
        for mode, symbol in MODE_SYMBOLS.items():
            front = sorted((r for r in sel if r["mode"] == mode and r.get("pareto")), key=lambda r: r["ms_per_problem"])
            if front:
                fig.add_trace(go.Scatter(x=[r["ms_per_problem"] for r in front], y=[r["accuracy"] for r in front],
                                         mode="lines", line=dict(color="#9aa3ad", dash="dash", width=1),
                                         hoverinfo="skip", showlegend=False), 1, col)
            for family, color in FAMILY_COLORS.items():
                pts = [r for r in sel if r["mode"] == mode and strategy_family(r["strategy"]) == family]
                if not pts:
                    continue
                name = f"{family} · {mode}"
                fig.add_trace(go.Scatter(
                    x=[r["ms_per_problem"] for r in pts], y=[r["accuracy"] for r in pts], mode="markers",
                    name=name, legendgroup=name, showlegend=name not in shown, text=[r["strategy"] for r in pts],
                    marker=dict(color=color, symbol=symbol, size=10, line=dict(width=1, color="white")),
                    hovertemplate="%{text}<br>" + mode + "<br>%{y:.1%} verified<br>%{x:.1f} ms per problem"
                                  "<extra></extra>"), 1, col)
                shown.add(name)
        fig.update_xaxes(type="log", title_text="ms per problem (log)", row=1, col=col)
    fig.update_yaxes(title_text="verified accuracy", tickformat=".0%", row=1, col=1)
    fig.update_layout(title="Accuracy-latency frontier: verified answers per millisecond (dashed: Pareto front)",
                      height=420, plot_bgcolor="white", margin=dict(l=60, r=20, t=70, b=50))
    return fig


def bench_figure(result: Mapping) -> go.Figure:
    """The chart for a benchmark result (engine.run_suite): one layout per suite."""
    rows, suite = result.get("rows", []), result.get("suite")
    if not rows:
        return _empty(go.Figure(), "Run a suite to see its chart.")
    if suite == "generation":
        return _grouped(rows, "case", "preset", "avg_ms", "Generation: avg ms (min–max) per case", "ms",
                        ("min_ms", "max_ms"))
    if suite == "beam":
        return _grouped(rows, "decoder", "width", "seconds", "Beam search: seconds for all problems", "s")
    if suite == "hf":
        flat = [{"mode": f"{r['mode']} · batch {r['batch']}", "engine": e, "ms": r[f"{e}_ms_per_problem"]}
                for r in rows for e in ("ours", "hf")]
        return _grouped(flat, "mode", "engine", "ms", "Ours vs transformers generate(): ms per problem", "ms")
    if suite == "sweep":
        return _sweep(rows)
    if suite == "frontier":
        return frontier_chart(rows)
    return _empty(go.Figure(), f"No chart for suite {suite!r}.")
