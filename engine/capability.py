"""What a checkpoint can solve: its verified accuracy per degree pair, read from the evaluation JSON that
`python -m engine.evaluate ... --json` wrote (docs/model/eval_<set>_<decoder>.json), never typed by hand.

An evaluation counts for a checkpoint only when the JSON's `weights_sha256` is the digest of that checkpoint's
safetensors file, so figures measured on other weights are never shown as this model's.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import re
from dataclasses import dataclass, field

from .checkpoint import DEFAULT_CHECKPOINT, weights_digest

MODEL_DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "model")
SETS = ("standard", "small")  # the training distribution, and P, Q coefficients in [-5, 5]
_NAME = re.compile(r"eval_(?P<set>[a-z]+)_(?P<decoder>[a-z]+\d*)\.json$")
_PAIR = re.compile(r"_(\d)_(\d)\.txt$")


def decoder_label(key: str) -> str:
    """"greedy" -> greedy, "beam10" -> beam 10, "sample16" -> best of 16 samples."""
    m = re.fullmatch(r"([a-z]+?)(\d*)", key)
    name, n = (m.group(1), m.group(2)) if m else (key, "")
    return {"beam": f"beam {n}", "sample": f"best of {n} samples"}.get(name, name) if n else name


@dataclass(frozen=True)
class Capability:
    """Verified accuracy per (set, decoder key, pair), with the problems each figure is measured on."""
    accuracy: dict[tuple[str, str, tuple[int, int]], float] = field(default_factory=dict)
    problems: dict[tuple[str, str, tuple[int, int]], int] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # the JSON files read

    def get(self, pair: tuple[int, int], decoder: str = "greedy", which: str = "standard") -> float | None:
        return self.accuracy.get((which, decoder, tuple(pair)))

    def decoders(self, which: str = "standard") -> list[str]:
        """Decoder keys measured on a set, greedy first, then by width."""
        keys = {d for s, d, _ in self.accuracy if s == which}
        return sorted(keys, key=lambda k: (k != "greedy", len(k), k))

    def best(self, pair: tuple[int, int], which: str = "standard") -> tuple[str, float] | None:
        """The decoder with the highest accuracy on a pair (the cheapest one on ties)."""
        found = [(d, a) for d in self.decoders(which) if (a := self.get(pair, d, which)) is not None]
        return max(found, key=lambda da: da[1]) if found else None

    def __bool__(self) -> bool:
        return bool(self.accuracy)


def read_evaluation(path: str, digest: str | None) -> tuple[str, str, list[dict]] | None:
    """(set, decoder key, result rows) of one eval JSON when it was measured on weights with this digest
    (any weights when digest is None); None for other weights, other files and unreadable ones."""
    m = _NAME.search(os.path.basename(path))
    if not m or m.group("set") not in SETS:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if digest is not None and data.get("weights_sha256") != digest:
            return None
        rows = [r for r in data["results"] if isinstance(r, dict)]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return m.group("set"), m.group("decoder"), rows


def read_capability(checkpoint: str = DEFAULT_CHECKPOINT, docs_dir: str = MODEL_DOCS) -> Capability:
    """Every evaluation in docs_dir measured on this checkpoint's weights (empty when there is none)."""
    try:
        digest = weights_digest(checkpoint)
    except OSError:
        return Capability()
    acc, problems, sources = {}, {}, []
    for path in sorted(glob.glob(os.path.join(docs_dir, "eval_*.json"))):
        found = read_evaluation(path, digest)
        if found is None:
            continue
        which, decoder, rows = found
        for r in rows:
            pair = _PAIR.search(str(r.get("file", "")))
            if pair is None or not isinstance(r.get("accuracy"), (int, float)):
                continue
            key = (which, decoder, (int(pair.group(1)), int(pair.group(2))))
            acc[key], problems[key] = float(r["accuracy"]), int(r.get("problems", 0))
        sources.append(os.path.basename(path))
    return Capability(acc, problems, tuple(sources))


@functools.cache
def capability(checkpoint: str = DEFAULT_CHECKPOINT) -> Capability:
    """read_capability, once per checkpoint path for the server's lifetime."""
    return read_capability(checkpoint)


def pairs_for_degree(n: int, pairs) -> list[tuple[int, int]]:
    """The trained (deg P, deg Q) pairs an f of degree n can belong to."""
    return [(i, j) for i, j in pairs if i * j == n]
