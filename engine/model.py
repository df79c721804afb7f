"""The GPT: pre-LN minGPT layout (learned absolute positions, GELU MLP 4x, biases on every
Linear but the head, untied embeddings). One file; the KV cache is a forward argument."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tokenizer import ANSWER_ORDERS, PROMPT_FORMATS, vocab_for

ATTENTION_BACKENDS = ("math", "sdpa")


@dataclass(frozen=True)
class GPTConfig:
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    block_size: int = 300  # longest prompt + answer the positions cover
    vocab_size: int = 0  # 0: the size of the prompt format's vocabulary
    prompt_format: str = "seed"  # how f is written in the prompt (engine/prompt.py); answers are always seed tokens
    answer_order: str = "ascending"  # the order of Q's terms in the answer: "ascending" (the seed's) or "descending"

    def __post_init__(self):
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"unknown prompt_format {self.prompt_format!r}; choose from {PROMPT_FORMATS}")
        if self.answer_order not in ANSWER_ORDERS:
            raise ValueError(f"unknown answer_order {self.answer_order!r}; choose from {ANSWER_ORDERS}")
        if self.vocab_size == 0:
            object.__setattr__(self, "vocab_size", len(vocab_for(self.prompt_format)))
        if self.vocab_size < len(vocab_for(self.prompt_format)):
            raise ValueError(f"vocab_size={self.vocab_size} is smaller than the {self.prompt_format!r} prompt "
                             f"format's {len(vocab_for(self.prompt_format))} tokens")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


PRESETS: dict[str, GPTConfig] = {
    "tiny": GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=300),
    # compact e1 prompts: chosen by an A/B against e0 (README, "Training the model")
    "default": GPTConfig(n_layer=4, n_head=8, n_embd=256, block_size=300, prompt_format="e1"),
    "paper": GPTConfig(n_layer=6, n_head=8, n_embd=512, block_size=300),  # the seed's 19,100,672
}


def state_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in GPT(cfg).state_dict(), without building anything: a checkpoint's config
    is checked against its weights before a possibly huge model is allocated (tests keep this in step with GPT)."""
    C, V = cfg.n_embd, cfg.vocab_size
    shapes = {"tok_emb.weight": (V, C), "pos_emb": (1, cfg.block_size, C)}
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        shapes.update({b + "ln1.weight": (C,), b + "ln1.bias": (C,), b + "attn.qkv.weight": (3 * C, C),
                       b + "attn.qkv.bias": (3 * C,), b + "attn.proj.weight": (C, C), b + "attn.proj.bias": (C,),
                       b + "ln2.weight": (C,), b + "ln2.bias": (C,), b + "mlp.0.weight": (4 * C, C),
                       b + "mlp.0.bias": (4 * C,), b + "mlp.2.weight": (C, 4 * C), b + "mlp.2.bias": (C,)})
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,), "head.weight": (V, C)})
    return shapes


class SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # query, key, value stacked in that order
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def heads(self, x):
        """(B, T, C) -> query, key, value, each (B, H, T, D)."""
        B, T, C = x.shape
        return self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)

    def forward(self, x, layer: int, mask, cache, attention: str, last: bool = False):
        """last: the output at the last position only (the model's last layer when only the next token's logits
        are wanted); every position's key and value are still computed and cached."""
        B, T, C = x.shape
        q, k, v = self.heads(x)  # (B, H, T, D)
        if last and T > 1:
            q, T = q[:, :, -1:], 1
            if mask is not None:  # None (causal) needs nothing: the last query sees every key
                mask = mask[..., -1:, :]
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, S, D): everything cached so far plus this step
            if cache.prefix_k is not None:  # shared-prefix: the prompt is held once per problem
                y = attend_shared(q, cache.prefix_k[layer], cache.prefix_v[layer], cache.prefix_mask, k, v)
                return self.proj(y.transpose(1, 2).reshape(B, T, C))
        return self.proj(attend(q, k, v, mask, attention).transpose(1, 2).reshape(B, T, C))

    def step_fixed(self, x, t, mask, k_buf, v_buf, attention: str):
        """forward() for one token per row against fixed-size buffers k_buf, v_buf (B, H, L, D): this token's
        key and value are written at position t (a 0-dim tensor) in place, and mask (B, 1, 1, L) hides the
        padding and the positions not written yet (GPT.decode_step)."""
        B, T, C = x.shape
        q, k, v = self.heads(x)
        k_buf.index_copy_(2, t.view(1), k)
        v_buf.index_copy_(2, t.view(1), v)
        return self.proj(attend(q, k_buf, v_buf, mask, attention).transpose(1, 2).reshape(B, T, C))


def attend(q, k, v, mask, attention: str):
    """softmax(q k^T / sqrt(D)) v for q (B, H, T, D), k, v (B, H, S, D); mask bool (B, 1, T, S), True where a
    query may attend a key, or None for causal attention over T = S positions."""
    T = q.size(2)
    if attention == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, H, T, S)
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    elif T > 1:
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=q.device).tril(), float("-inf"))
    return F.softmax(att, dim=-1) @ v


def attend_shared(q, pk, pv, pmask, gk, gv):
    """One new token per row attends its problem's prompt (stored once) and its own generated keys.

    q (N, H, 1, D) with the N = G * K rows grouped by problem; pk, pv (G, H, P, D); pmask (G, 1, 1, P)
    bool or None; gk, gv (N, H, S, D). The prompt part is a batched matmul over the K rows of each
    problem, so the prompt's keys are never copied per beam. The softmax spans both parts.
    """
    N, H, T, D = q.shape
    G, P = pk.size(0), pk.size(2)
    K = N // G
    scale = 1.0 / math.sqrt(D)
    qg = q.view(G, K, H, D).transpose(1, 2)  # (G, H, K, D)
    sp = (qg @ pk.transpose(-2, -1)) * scale  # (G, H, K, P)
    if pmask is not None:
        sp = sp.masked_fill(~pmask, float("-inf"))
    sg = (q @ gk.transpose(-2, -1)) * scale  # (N, H, 1, S)
    att = torch.cat((sp.transpose(1, 2).reshape(N, H, 1, P), sg), dim=-1).softmax(dim=-1)
    wp, wg = att.split((P, att.size(-1) - P), dim=-1)
    yp = wp.view(G, K, H, P).transpose(1, 2) @ pv  # (G, H, K, D)
    return yp.transpose(1, 2).reshape(N, H, 1, D) + wg @ gv


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(), nn.Linear(4 * cfg.n_embd, cfg.n_embd))

    def forward(self, x, layer, mask, cache, attention, last: bool = False):
        """last: only the last position goes on past the attention (SelfAttention.forward)."""
        a = self.attn(self.ln1(x), layer, mask, cache, attention, last)
        x = (x[:, -1:] if last else x) + a
        return x + self.mlp(self.ln2(x))

    def step_fixed(self, x, t, mask, k_buf, v_buf, attention):
        x = x + self.attn.step_fixed(self.ln1(x), t, mask, k_buf, v_buf, attention)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.block_size, cfg.n_embd))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, pos: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                cache=None, attention: str = "sdpa", last_only: bool = False,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, V), or (B, 1, V) for the last position when last_only.

        pos:  (B, T) or (T,) position ids; default 0..T-1 after whatever the cache holds.
        mask: bool (B, 1, T, S), True where a query may attend a key; S counts cached keys too.
              None means plain causal attention over the whole (cached + new) sequence.
        cache: an object with update(layer, k, v) -> (k_all, v_all) (see engine.cache); the
              caller advances it after the forward.
        select: bool (B, T): logits only where True, as (N, V) (training: the answer positions).
        """
        if attention not in ATTENTION_BACKENDS:
            raise ValueError(f"unknown attention backend {attention!r}; choose from {ATTENTION_BACKENDS}")
        B, T = idx.shape
        start = 0 if cache is None else cache.pos
        if pos is None:
            if start + T > self.config.block_size:
                raise ValueError(f"position {start + T - 1} is beyond the block size {self.config.block_size}")
            pos_emb = self.pos_emb[:, start:start + T]  # a slice: no index tensor, no device sync
        else:
            pos_emb = self.pos_emb[0, pos]  # the caller keeps pos < block_size (decode checks it up front)
        if mask is None and start > 0 and T > 1:
            S = start + T  # causal over new queries against cached + new keys
            mask = torch.ones(T, S, dtype=torch.bool, device=idx.device).tril(diagonal=start)
        x = self.tok_emb(idx) + pos_emb
        last = self.config.n_layer - 1 if last_only and select is None else -1
        for i, block in enumerate(self.blocks):  # decoding needs only the next-token logits: the last layer
            x = block(x, i, mask, cache, attention, last=i == last)  # computes them at the last position only
        if select is not None:
            x = x[select]  # (N, C): the head and final norm only where a target is
        return self.head(self.ln_f(x))

    def decode_step(self, tok: torch.Tensor, pos: torch.Tensor, t: torch.Tensor, keys_ok: torch.Tensor,
                    k_bufs: list[torch.Tensor], v_bufs: list[torch.Tensor], attention: str = "sdpa") -> torch.Tensor:
        """One new token per row against fixed-size key/value buffers, so that no shape changes from step to
        step (what torch.compile needs: DecodeOptions.compile). Gives forward(tok[:, None], cache=...)'s logits.

        tok, pos: (R,) token and position ids. t: 0-dim long tensor, the buffer position this token is written
        at. keys_ok: (R, L) bool, False at padding; positions after t are masked here. k_bufs, v_bufs: per
        layer (R, H, L, D), written at t in place; unwritten positions must hold finite values (they get
        weight 0, and 0 * NaN is NaN). Returns logits (R, V)."""
        L = k_bufs[0].size(2)
        x = self.tok_emb(tok[:, None]) + self.pos_emb[0, pos[:, None]]  # (R, 1, C)
        mask = (keys_ok & (torch.arange(L, device=tok.device) <= t))[:, None, None, :]
        for block, k_buf, v_buf in zip(self.blocks, k_bufs, v_bufs):
            x = block.step_fixed(x, t, mask, k_buf, v_buf, attention)
        return self.head(self.ln_f(x[:, 0]))
