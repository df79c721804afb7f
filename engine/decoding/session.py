"""One decode request's tensors: padded prompts, masks, positions and the KV cache.

The decoders (greedy.py, beam.py) only choose tokens; a session turns "these rows, these tokens" into
next-token logits and makes its rows follow the chosen parents. BatchSession runs every row of
every problem in one forward per step; SerialSession is the seed's loop (one forward per beam,
one deep copy of the cache per surviving candidate), kept as a benchmark baseline.

Left padding keeps every prompt's last token in the last column. Each row's positions start at 0
at its first real token, and a key-padding mask hides the padding; padded queries may attend to
themselves, so no attention row is fully masked (no NaN).
"""
from __future__ import annotations

import copy
import time
from typing import Sequence

import torch

from .cache import PromptStore, make_cache, prompt_kv
from .compiled import compiled_step
from .fused import extension as fused_extension, fused_step, session_weights
from .precision import model_at, tiled_unavailable
from ..device import phase, synchronize
from ..tokenizer import PAD_ID


def left_pad(prompts: Sequence[Sequence[int]], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both (B, T): prompts right-aligned, PAD on the left, mask 1 on real tokens."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    T = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), T), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), T), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, T - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[r, T - len(p):] = 1
    return ids.to(device), mask.to(device)


def open_session(model, prompts: Sequence[Sequence[int]], opts,
                 store: "tuple[PromptStore, list[int]] | None" = None) -> "BatchSession | SerialSession":
    """The session a decoder runs on: the seed's one-beam-at-a-time loop when opts.one_at_a_time, else batched;
    on the model at opts.precision with opts.linear's kernels (decoding/precision.py).

    store = (PromptStore, problems): the prompts are rows `problems` of the store's batch; the prefill takes
    them from the store when it holds them, else computes them and leaves them there (a cascade's stages share
    one prefill: decoding/cascade.py). Only the batched session with a cache uses it."""
    model, prompts = model_at(model, opts.precision, opts.linear), [list(map(int, p)) for p in prompts]
    if opts.one_at_a_time:
        return SerialSession(model, prompts, opts)
    return BatchSession(model, prompts, opts, store)

# Elements (4 MB of float32) per temporary of one no-cache forward. Small on purpose: glibc hands freed
# blocks of this size back to later steps, while bigger ones (which grow with S every step) pile up in its
# heap; measured on V1, beam 10, the 3-problem mixed batch: peak +40 MB at 1 << 20, +263 MB at 1 << 23.
RECOMPUTE_BUDGET = 1 << 20


def grad_mode(name: str):
    """"inference" -> torch.inference_mode(); "no_grad" -> torch.no_grad()."""
    return torch.inference_mode() if name == "inference" else torch.no_grad()


class _Timed:
    def elapsed_since(self, t0: float) -> float:
        """Milliseconds since t0 (perf_counter), after the device has finished its queued work."""
        synchronize(self.device)
        return (time.perf_counter() - t0) * 1000.0

    @property
    def cache_bytes(self) -> int:
        return 0

    def fused_beam_select(self):
        """The C++ tensor half of a beam step (BatchSession with the fused step), or None."""
        return None


class BatchSession(_Timed):
    """All rows in one forward per step. Rows are grouped by problem (K per problem after expand)."""

    def __init__(self, model, prompts: list[list[int]], opts, store: "tuple[PromptStore, list[int]] | None" = None):
        self.model, self.opts = model, opts
        self.store = store if opts.cache != "none" else None
        self.device = next(model.parameters()).device
        lens = [len(p) for p in prompts]
        self.P = P = max(lens)
        self.total = P + opts.max_new
        self.idx, _ = left_pad(prompts, self.device)
        self.pad = torch.tensor([P - n for n in lens], device=self.device)  # (rows,)
        self.padded = min(lens) != P
        self.g = 0  # generated tokens fed to the model so far
        # One row per problem (greedy, width 1) leaves nothing to share, and best-of-N samples leave the batch one
        # by one (shared-prefix keeps K rows per problem): shared-prefix is gather then.
        beam_cache = opts.beam_cache
        if beam_cache == "shared-prefix" and (opts.beams == 1 or opts.decoder != "beam"):
            beam_cache = "gather"
        self.shared = beam_cache == "shared-prefix" and opts.cache != "none"
        self.recompute = opts.cache == "none"
        arange = torch.arange(self.total, device=self.device)
        valid = arange[None, :] >= self.pad[:, None]  # (rows, total): real keys
        self.cache = make_cache(opts.cache, beam_cache, model.config.n_layer, self.total,
                                prefix_mask=valid[:, None, None, :P] if self.padded else None, max_new=opts.max_new,
                                zeroed=opts.compile != "off")
        self.seq = None
        if self.recompute:
            self.seq = torch.full((len(prompts), self.total), PAD_ID, dtype=torch.long, device=self.device)
            self.seq[:, :P] = self.idx
        self.tables = None if opts.rebuild_masks else self._build_tables(self.pad)
        self.compiled = compiled_step(model) if opts.compile != "off" else None  # options checked the rest
        self.fused = session_weights(model) if opts.step != "modules" else None  # built before the first step
        # (a step other than "modules" runs on the static cache only: DecodeOptions checks it)
        if (self.shared and opts.step == "native" and self.fused is not None
                and self.cache_like().dtype == torch.float32 and tiled_unavailable() is None):
            self.cache.inner.use_slots()  # beams follow their parents by a table, not by copying the cache

    def _build_tables(self, pad: torch.Tensor) -> dict[str, torch.Tensor]:
        """Masks and positions for every step, built once and sliced per step (V3 and fastest)."""
        T = self.total
        arange = torch.arange(T, device=self.device)
        valid = arange[None, :] >= pad[:, None]  # (rows, T)
        pos = (arange[None, :] - pad[:, None]).clamp(min=0)  # (rows, T)
        tables = {"pos": pos, "keys": valid[:, None, None, :]}
        if self.padded:
            causal = torch.ones(T, T, dtype=torch.bool, device=self.device).tril()
            eye = torch.eye(T, dtype=torch.bool, device=self.device)
            tables["full"] = (causal[None] & (valid[:, None, :] | eye[None]))[:, None]  # (rows, 1, T, T)
        return tables

    def _mask_full(self, S: int) -> torch.Tensor | None:
        """(rows, 1, S, S) causal + key padding mask for S positions, or None when nothing is padded."""
        if not self.padded:
            return None
        if self.tables is not None:
            return self.tables["full"][:, :, :S, :S]
        arange = torch.arange(S, device=self.device)
        valid = arange[None, :] >= self.pad[:, None]
        causal = arange[None, :] <= arange[:, None]
        return (causal[None] & (valid[:, None, :] | torch.eye(S, dtype=torch.bool, device=self.device)))[:, None]

    def _positions(self, lo: int, hi: int) -> torch.Tensor | None:
        if not self.padded:
            return None
        if self.tables is not None:
            return self.tables["pos"][:, lo:hi]
        return (torch.arange(lo, hi, device=self.device)[None, :] - self.pad[:, None]).clamp(min=0)

    def prefill(self) -> torch.Tensor:
        """Logits (rows, V) for the token after every prompt; fills the cache (from the store where it holds
        these prompts, and into it where it does not yet)."""
        with phase("prefill"):
            P = self.P
            if self.recompute:
                return self._recompute(P)[:, -1]
            if self.store is not None and self.store[0].held:
                ks, vs, logits = self.store[0].take(self.store[1], P)
                for layer, (k, v) in enumerate(zip(ks, vs)):
                    self.cache.update(layer, k, v)
                self.cache.advance(P)
                return logits
            if self.fused is not None:
                logits = self._fused_prefill()[:, None]
            else:
                logits = self.model(self.idx, pos=self._positions(0, P), mask=self._mask_full(P), cache=self.cache,
                                    attention=self.opts.attention, last_only=True)
            self.cache.advance(P)
            if self.store is not None:
                self.store[0].hold(*prompt_kv(self.cache, P), logits[:, -1])
        return logits[:, -1]

    def step(self, tok: torch.Tensor) -> torch.Tensor:
        """Feed the token chosen for every row (rows,); logits (rows, V) for the next one."""
        with phase("decode_step"):
            S = self.P + self.g + 1
            if self.recompute:
                self.seq[:, S - 1] = tok
                logits = self._recompute(S)
            elif self.fused is not None:
                logits = self._fused_step(tok, S)[:, None]
                self.cache.advance(1)
            elif self.compiled is not None:  # whole static buffers, position S - 1 as a tensor: shapes stay put
                t = S - 1
                logits = self.compiled(tok, self.tables["pos"][:, t], torch.tensor(t, device=self.device),
                                       self.tables["keys"][:, 0, 0], self.cache.k, self.cache.v,
                                       self.opts.attention)[:, None]
                self.cache.advance(1)
            else:
                logits = self.model(tok[:, None], pos=self._positions(S - 1, S), mask=self._key_mask(S),
                                    cache=self.cache, attention=self.opts.attention, last_only=True)
                self.cache.advance(1)
            self.g += 1
        return logits[:, -1]

    def _fused_step(self, tok: torch.Tensor, S: int) -> torch.Tensor:
        """Logits (rows, V) from decoding/fused.py: the step of the module path in one C++ call."""
        cfg, cache = self.model.config, self.cache
        pos = self.tables["pos"][:, S - 1] if self.tables is not None else (S - 1 - self.pad).clamp(min=0)
        prefix, static = None, cache
        if self.shared:
            prefix, static = (cache.prefix_k, cache.prefix_v, cache.prefix_mask), cache.inner
        k, v = static.buffers(tok.size(0), cfg.n_head, cfg.head_dim, self.cache_like())
        return fused_step(self.fused, tok, pos, S - 1, k, v, self._key_mask(S), prefix, self.opts.attention,
                          self.opts.step == "native", static.slots)

    def _fused_prefill(self) -> torch.Tensor:
        """Logits (rows, V) after every prompt from decoding/fused.py: the module path's prefill in one C++ call,
        filling the static cache or the shared-prefix cache's prompt part (the caller advances it)."""
        cfg, cache, P = self.model.config, self.cache, self.P
        k, v = [], []
        if not self.shared:
            k, v = cache.buffers(self.idx.size(0), cfg.n_head, cfg.head_dim, self.cache_like())
        out = self.fused.prefill(self.idx, self._positions(0, P), self._mask_full(P), k, v,
                                 self.opts.attention == "sdpa")
        if self.shared:
            cache.hold_prefix(out[1::2], out[2::2])
        return out[0]

    def fused_beam_select(self):
        """fused_step.cpp's beam_select where the step is fused (same operations as beam.py's tensor half), else
        None."""
        return None if self.fused is None else fused_extension().beam_select

    def cache_like(self) -> torch.Tensor:
        """A tensor of the cache's dtype and device (the model's activations)."""
        return self.model.tok_emb.weight

    def _recompute(self, S: int) -> torch.Tensor:
        """Logits (rows, 1, V) for the last of S positions, recomputing all of them (no cache).

        Rows are independent, so they go through the model in chunks small enough that the temporaries
        (attention scores rows x H x S x S, MLP activations rows x S x 4C) stay under RECOMPUTE_BUDGET
        elements: otherwise a wide beam on a long prompt allocates gigabytes for one step."""
        cfg = self.model.config
        rows = self.seq.size(0)
        chunk = max(1, RECOMPUTE_BUDGET // (S * (cfg.n_head * S + 4 * cfg.n_embd)))
        pos, mask = self._positions(0, S), self._mask_full(S)
        out = []
        for lo in range(0, rows, chunk):
            part = slice(lo, lo + chunk)
            out.append(self.model(self.seq[part, :S], pos=None if pos is None else pos[part],
                                  mask=None if mask is None else mask[part], attention=self.opts.attention,
                                  last_only=True))
        return out[0] if len(out) == 1 else torch.cat(out)

    def _key_mask(self, S: int) -> torch.Tensor | None:
        """(rows, 1, 1, S): which cached keys the new token may see (shared-prefix masks its prompt itself)."""
        if not self.padded or self.shared:
            return None
        if self.tables is not None:
            return self.tables["keys"][..., :S]
        return (torch.arange(S, device=self.device)[None, :] >= self.pad[:, None])[:, None, None, :]

    def expand(self, k: int) -> None:
        """After the prefill: every problem's row becomes k rows (one per beam)."""
        if k == 1:
            return
        self.pad = self.pad.repeat_interleave(k)
        if self.tables is not None:
            if not self.recompute:
                self.tables.pop("full", None)  # with a cache only the prefill needs the square mask
            self.tables = {name: t.repeat_interleave(k, dim=0) for name, t in self.tables.items()}
        if self.seq is not None:
            self.seq = self.seq.repeat_interleave(k, dim=0)
        if self.cache is not None:
            self.cache.expand(k)

    def select(self, parents: list[int], keep_problems: list[int]) -> None:
        """Rows follow their parents (rows of the same problem); problems not in keep_problems are gone."""
        rows = self.pad.numel()
        if parents == list(range(rows)):
            return
        idx = torch.tensor(parents, device=self.device)
        if len(parents) != rows:  # problems left: per-row tables shrink (within a problem they are equal)
            self.pad = self.pad.index_select(0, idx)
            if self.tables is not None:
                self.tables = {name: t.index_select(0, idx) for name, t in self.tables.items()}
        if self.seq is not None:
            self.seq = self.seq.index_select(0, idx)
        if self.cache is None:
            return
        if self.opts.beam_cache == "clone":
            with phase("cache_clone"):
                self.cache.clone_rows(parents)
        else:
            with phase("cache_reorder"):
                self.cache.reorder(idx)

    @property
    def cache_bytes(self) -> int:
        return 0 if self.cache is None else self.cache.nbytes


class SerialSession(_Timed):
    """The seed's way: each problem prefilled alone, one forward per beam, one cache copy per candidate."""

    def __init__(self, model, prompts: list[list[int]], opts):
        self.model, self.opts = model, opts
        self.device = next(model.parameters()).device
        self.prompts = prompts
        self.rows: list[tuple[list[int], object]] = []  # (token ids so far, cache) per row

    def _forward(self, seq: list[int], cache) -> torch.Tensor:
        feed = seq if cache is None or cache.pos == 0 else seq[-1:]
        x = torch.tensor([feed], dtype=torch.long, device=self.device)
        logits = self.model(x, cache=cache, attention=self.opts.attention, last_only=True)
        if cache is not None:
            cache.advance(len(feed))
        return logits[:, -1]

    def prefill(self) -> torch.Tensor:
        with phase("prefill"):
            for p in self.prompts:
                cache = make_cache(self.opts.cache, "gather", self.model.config.n_layer, len(p) + self.opts.max_new)
                self.rows.append((list(p), cache))
            return torch.cat([self._forward(seq, cache) for seq, cache in self.rows])

    def step(self, tok: torch.Tensor) -> torch.Tensor:
        out = []
        for (seq, cache), t in zip(self.rows, tok.tolist()):
            with phase("decode_step"):
                seq.append(t)
                out.append(self._forward(seq, cache))
        return torch.cat(out)

    def expand(self, k: int) -> None:
        with phase("cache_clone"):
            self.rows = [copy.deepcopy(row) for row in self.rows for _ in range(k)]

    def select(self, parents: list[int], keep_problems: list[int]) -> None:
        with phase("cache_clone"):
            self.rows = [copy.deepcopy(self.rows[r]) for r in parents]

    @property
    def cache_bytes(self) -> int:
        return sum(cache.nbytes for _, cache in self.rows if cache is not None)
