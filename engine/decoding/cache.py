"""KV-cache strategies behind one small interface, picked by name.

A cache belongs to one request: decode() creates it, passes it into GPT.forward(cache=...) and drops
it at the end; it is never stored on the model. Every strategy speaks the same verbs:

    update(layer, k, v) -> (k, v)   store this step's keys/values (B, H, T, D); return all of them (B, H, S, D)
    advance(n)                      after a forward: n more positions are stored
    pos                             positions stored so far
    reset()                         forget everything
    reorder(beam_idx)               rows follow beam_idx (one index_select on the batch dim)
    clone_rows(beam_idx)            the same result the seed's way: one deep copy per surviving row
    expand(k)                       after the prefill: repeat every row k times (one per beam)
    nbytes                          bytes held

Strategies: "none" (no cache: the decoder recomputes the whole sequence, the reference), "concat"
(grows with torch.cat), "static" (preallocated, written in place). Beam cache handling: "clone",
"gather", "shared-prefix" (SharedPrefixCache wraps concat or static: the prompt's keys/values are
held once per problem and only the generated positions follow the beams).
"""
from __future__ import annotations

import torch


class ConcatCache:
    """Per layer one (B, H, S, D) tensor for keys and one for values, grown with torch.cat."""

    prefix_k = None  # only SharedPrefixCache holds a separate prompt part

    def __init__(self, n_layer: int, max_len: int):
        self.n_layer, self.max_len = n_layer, max_len
        self.reset()

    def reset(self) -> None:
        self.k: list[torch.Tensor | None] = [None] * self.n_layer
        self.v: list[torch.Tensor | None] = [None] * self.n_layer
        self.pos = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat((self.k[layer], k), dim=2)
            v = torch.cat((self.v[layer], v), dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def advance(self, n: int) -> None:
        self.pos += n

    def reorder(self, beam_idx: torch.Tensor) -> None:
        self.k = [t.index_select(0, beam_idx) for t in self.k]
        self.v = [t.index_select(0, beam_idx) for t in self.v]

    def clone_rows(self, beam_idx: list[int]) -> None:
        """The seed's beam handling: every surviving row deep-copies its parent's cache, layer by layer."""
        rows = [[(self.k[i][r:r + 1].clone(), self.v[i][r:r + 1].clone()) for i in range(self.n_layer)]
                for r in beam_idx]
        self.k = [torch.cat([row[i][0] for row in rows]) for i in range(self.n_layer)]
        self.v = [torch.cat([row[i][1] for row in rows]) for i in range(self.n_layer)]

    def expand(self, k: int) -> None:
        self.k = [t.repeat_interleave(k, dim=0) for t in self.k]
        self.v = [t.repeat_interleave(k, dim=0) for t in self.v]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v if t is not None)


class StaticCache:
    """Per layer one preallocated (B, H, max_len, D) buffer for keys and one for values, written in place.

    All of them are views of one (2 * n_layer, B, H, max_len, D) tensor (keys of every layer, then values), so
    a reorder is one index_select for the whole cache, not one per layer and tensor. The slice [:, :, :S] of a
    layer's buffer keeps B and H mergeable, so attention's matmuls read it without a copy. A reorder writes the
    positions stored so far into a second such tensor with index_select(out=...) and swaps the two; dropping
    rows uses the first n rows. Positions not written yet are never read, so the buffers are left
    uninitialised, unless `zeroed`: the compiled step (GPT.decode_step) reads whole buffers, masked, and needs
    finite values everywhere.

    With use_slots() (step "native" on a shared-prefix cache's generated part) rows are never moved: `slots`
    (rows, max_len) says which buffer row holds each row's key and value at each position, a step writes its
    token's at rows 0..R-1 of the new position, and a reorder gathers the small table instead of the cache
    (a position, once written, is never written again, so every row it is the history of can keep reading it).
    The native attention reads keys through the table; the values read are the same, so outputs do not change.
    """

    prefix_k = None

    def __init__(self, n_layer: int, max_len: int, zeroed: bool = False):
        self.n_layer, self.max_len, self.zeroed = n_layer, max_len, zeroed
        self.by_slots = False
        self.reset()

    def use_slots(self) -> None:
        """Follow beams through the slot table instead of copying rows (before the first step; see above)."""
        if self.buf is not None:
            raise ValueError("use_slots() comes before the cache holds anything")
        self.by_slots = True

    def _buffer(self, like: torch.Tensor, shape) -> torch.Tensor:
        return like.new_zeros(shape) if self.zeroed else like.new_empty(shape)

    def _use(self, buf: torch.Tensor | None) -> None:
        """Make `buf` (2 * n_layer, B, H, max_len, D) the cache: k and v are its per-layer views."""
        self.buf = buf
        self.k = [] if buf is None else list(buf[:self.n_layer])
        self.v = [] if buf is None else list(buf[self.n_layer:])

    def reset(self) -> None:
        self._use(None)
        self.spare: torch.Tensor | None = None  # the reorder target
        self.slots: torch.Tensor | None = None  # (rows, max_len) int64 with use_slots()
        self.pos = 0

    def buffers(self, rows: int, n_head: int, head_dim: int, like: torch.Tensor) -> tuple[list, list]:
        """The key and value buffers, per layer (rows, H, max_len, D), allocated on first use (the fused step
        writes them itself: decoding/fused.py)."""
        if self.buf is None:
            self._use(self._buffer(like, (2 * self.n_layer, rows, n_head, self.max_len, head_dim)))
            if self.by_slots:
                self.slots = torch.empty((rows, self.max_len), dtype=torch.long, device=like.device)
                self._rows = torch.arange(rows, device=like.device)
        if self.pos >= self.max_len:
            raise ValueError(f"static cache holds {self.max_len} positions; asked for {self.pos + 1}")
        if self.by_slots:  # this step's token of row r goes to buffer row r
            self.slots[:, self.pos] = self._rows[:rows]
        return self.k, self.v

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.by_slots:
            raise ValueError("a cache with slots is written by the native step only")
        B, H, T, D = k.shape
        if self.buf is None:
            self._use(self._buffer(k, (2 * self.n_layer, B, H, self.max_len, D)))
        end = self.pos + T
        if end > self.max_len:
            raise ValueError(f"static cache holds {self.max_len} positions; asked for {end}")
        self.k[layer][:, :, self.pos:end] = k
        self.v[layer][:, :, self.pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        self.pos += n

    def reorder(self, beam_idx: torch.Tensor) -> None:
        if self.by_slots:  # rows follow their parents through the table; the buffers stay as they are
            self.slots = self.slots.index_select(0, beam_idx)
            return
        n, buf = beam_idx.numel(), self.buf
        if self.spare is None or self.spare.size(1) < n:
            self.spare = self._buffer(buf, (buf.size(0), n) + buf.shape[2:])
        out = self.spare[:, :n]  # each layer's first n rows of a contiguous buffer are contiguous
        # only the positions stored so far, straight into place, every layer's keys and values in one call
        torch.index_select(buf[:, :, :, :self.pos], 1, beam_idx, out=out[:, :, :, :self.pos])
        self.spare = buf
        self._use(out)

    def clone_rows(self, beam_idx: list[int]) -> None:
        """The seed's way: every surviving row deep-copies its parent's cache (all layers), one row at a time."""
        if self.by_slots:
            raise ValueError("a cache with slots follows beams by its table (reorder), not by copies")
        buf = self.buf
        new = buf.new_empty((buf.size(0), len(beam_idx)) + buf.shape[2:])
        for j, r in enumerate(beam_idx):
            new[:, j].copy_(buf[:, r])
        self._use(new)
        self.spare = None

    def expand(self, k: int) -> None:
        if self.by_slots:
            raise ValueError("a cache with slots is the shared-prefix cache's generated part: nothing to expand")
        self._use(self.buf.repeat_interleave(k, dim=1))
        self.spare = None

    @property
    def nbytes(self) -> int:
        held = 0 if self.buf is None else self.buf.numel() * self.buf.element_size()
        return held + (0 if self.slots is None else self.slots.numel() * self.slots.element_size())


class SharedPrefixCache:
    """The prompt's keys/values once per problem; the generated part per beam in an inner cache.

    The first update of each layer (the prefill, one row per problem) becomes the shared prefix;
    later updates go to the inner cache and GPT attends to both parts (model.attend_shared) with
    prefix_mask (G, 1, 1, P) hiding left padding. Rows are grouped by problem, K per problem.
    """

    def __init__(self, inner, prefix_mask: torch.Tensor | None = None):
        self.inner, self.n_layer = inner, inner.n_layer
        self.pad_mask = prefix_mask
        self.reset()

    def reset(self) -> None:
        self.inner.reset()
        self.prefix_k: list[torch.Tensor] | None = None
        self.prefix_v: list[torch.Tensor] | None = None
        self.prefix_mask = self.pad_mask
        self._pk: list[torch.Tensor | None] = [None] * self.n_layer
        self._pv: list[torch.Tensor | None] = [None] * self.n_layer
        self.plen = 0

    @property
    def pos(self) -> int:
        return self.plen + self.inner.pos

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prefix_k is None:  # the prefill: keep the prompt once (contiguous), attend it normally
            self._pk[layer], self._pv[layer] = k.contiguous(), v.contiguous()
            return k, v
        return self.inner.update(layer, k, v)

    def hold_prefix(self, ks: list[torch.Tensor], vs: list[torch.Tensor]) -> None:
        """The prefill's keys and values of every layer at once (the fused prefill writes no cache itself);
        advance() then makes them the shared prefix, as after update() layer by layer."""
        self._pk, self._pv = list(ks), list(vs)

    def advance(self, n: int) -> None:
        if self.prefix_k is None:
            self.plen += n
            self.prefix_k, self.prefix_v = self._pk, self._pv
            self.rows = self._pk[0].size(0)
        else:
            self.inner.advance(n)

    def _follow(self, beam_idx: torch.Tensor) -> None:
        """Drop the prompts of problems that left the batch (rows stay grouped, K per problem)."""
        G = self.prefix_k[0].size(0)
        K = self.rows // G
        n = beam_idx.numel() // K
        if n != G:
            keep = beam_idx[::K] // K
            self.prefix_k = [t.index_select(0, keep) for t in self.prefix_k]
            self.prefix_v = [t.index_select(0, keep) for t in self.prefix_v]
            if self.prefix_mask is not None:
                self.prefix_mask = self.prefix_mask.index_select(0, keep)
        self.rows = beam_idx.numel()

    def reorder(self, beam_idx: torch.Tensor) -> None:
        self._follow(beam_idx)
        if self.inner.pos:
            self.inner.reorder(beam_idx)

    def clone_rows(self, beam_idx: list[int]) -> None:
        self._follow(torch.tensor(beam_idx, device=self.prefix_k[0].device))
        if self.inner.pos:
            self.inner.clone_rows(beam_idx)

    def expand(self, k: int) -> None:
        """Nothing is copied: the inner cache is still empty and the prompt stays shared."""
        self.rows = self.prefix_k[0].size(0) * k

    @property
    def nbytes(self) -> int:
        shared = 0 if self.prefix_k is None else sum(t.numel() * t.element_size() for t in self.prefix_k + self.prefix_v)
        return shared + self.inner.nbytes


def prompt_kv(cache, P: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Right after a prefill of P positions: every layer's prompt keys and values (rows, H, P, D), in tensors
    the cache will not write again (a static cache's buffers are reused by later reorders, so those are copied)."""
    if cache.prefix_k is not None:
        return list(cache.prefix_k), list(cache.prefix_v)
    if isinstance(cache, StaticCache):
        return [t[:, :, :P].clone() for t in cache.k], [t[:, :, :P].clone() for t in cache.v]
    return list(cache.k), list(cache.v)


class PromptStore:
    """A batch's prompts after one prefill (the keys and values of every layer, and the logits of the token
    after each prompt), so that a later search over some of the same problems starts from them instead of
    running the prompts through the model again: a cascade's later stages (decoding/cascade.py). Prompts are
    right-aligned (session.left_pad), so a subset whose longest prompt has P' positions takes the last P'."""

    def __init__(self):
        self.ks: list[torch.Tensor] | None = None
        self.vs: list[torch.Tensor] | None = None
        self.logits: torch.Tensor | None = None

    @property
    def held(self) -> bool:
        return self.ks is not None

    def hold(self, ks: list[torch.Tensor], vs: list[torch.Tensor], logits: torch.Tensor) -> None:
        """ks, vs: per layer (B, H, P, D), one row per problem of the whole batch; logits (B, V)."""
        self.ks, self.vs, self.logits = ks, vs, logits

    def take(self, problems: list[int], P: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Rows of `problems` (indices into the held batch), the last P positions: (ks, vs, logits)."""
        if P > self.ks[0].size(2):
            raise ValueError(f"the held prompts have {self.ks[0].size(2)} positions, asked for {P}")
        idx = torch.tensor(problems, device=self.logits.device)
        lo = self.ks[0].size(2) - P
        pick = lambda t: t.index_select(0, idx)[:, :, lo:]
        return [pick(t) for t in self.ks], [pick(t) for t in self.vs], self.logits.index_select(0, idx)


CACHE_STRATEGIES: dict[str, type | None] = {"none": None, "concat": ConcatCache, "static": StaticCache}
BEAM_CACHE_HANDLING = ("clone", "gather", "shared-prefix")


def make_cache(strategy: str, beam_cache: str, n_layer: int, max_len: int,
               prefix_mask: torch.Tensor | None = None, max_new: int | None = None, zeroed: bool = False):
    """A fresh cache for one request, or None for strategy "none" (recompute every step).

    max_len: the most positions a row holds; max_new: the most generated ones (the shared-prefix
    inner cache holds only those); zeroed: static buffers start as zeros (the compiled step needs them).
    """
    if strategy not in CACHE_STRATEGIES:
        raise ValueError(f"unknown cache {strategy!r}; choose from {tuple(CACHE_STRATEGIES)}")
    if beam_cache not in BEAM_CACHE_HANDLING:
        raise ValueError(f"unknown beam cache {beam_cache!r}; choose from {BEAM_CACHE_HANDLING}")
    cls = CACHE_STRATEGIES[strategy]
    if cls is None:
        return None
    kw = {"zeroed": zeroed} if cls is StaticCache else {}
    if beam_cache == "shared-prefix":
        return SharedPrefixCache(cls(n_layer, max_new or max_len, **kw), prefix_mask)
    return cls(n_layer, max_len, **kw)
