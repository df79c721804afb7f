"""KV-cache strategies: the verbs, and that every strategy feeds attention the same keys."""
import pytest
import torch

from engine.decoding.cache import CACHE_STRATEGIES, ConcatCache, SharedPrefixCache, StaticCache, make_cache
from engine.model import GPT, PRESETS

L, B, H, D = 2, 3, 2, 4



def kv(T, b=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, H, T, D, generator=g), torch.randn(b, H, T, D, generator=g)


def fill(cache, steps=(5, 1, 1)):
    """Prefill 5 positions then two single steps in every layer; returns what was written, per layer."""
    written = [([], []) for _ in range(L)]
    for n, T in enumerate(steps):
        for layer in range(L):
            k, v = kv(T, seed=10 * n + layer)
            k_all, v_all = cache.update(layer, k, v)
            written[layer][0].append(k)
            written[layer][1].append(v)
            assert torch.equal(k_all, torch.cat(written[layer][0], dim=2))
            assert torch.equal(v_all, torch.cat(written[layer][1], dim=2))
        cache.advance(T)
    return [(torch.cat(k, 2), torch.cat(v, 2)) for k, v in written]


@pytest.mark.parametrize("cls", [ConcatCache, StaticCache])
def test_update_returns_everything_stored(cls):
    cache = cls(L, 16)
    fill(cache)
    assert cache.pos == 7
    assert cache.nbytes > 0
    cache.reset()
    assert cache.pos == 0 and cache.nbytes == 0


@pytest.mark.parametrize("cls", [ConcatCache, StaticCache])
@pytest.mark.parametrize("verb", ["reorder", "clone_rows"])
def test_reorder_and_clone_follow_the_beams(cls, verb):
    """Guards against a reorder that mixes rows up or loses positions (also when rows are dropped)."""
    cache = cls(L, 16)
    written = fill(cache)
    for idx in ([2, 0, 0], [1, 2]):
        getattr(cache, verb)(torch.tensor(idx) if verb == "reorder" else idx)
        written = [(k[idx], v[idx]) for k, v in written]
        k_new, v_new = kv(1, b=len(idx), seed=99)
        for layer in range(L):
            k_all, v_all = cache.update(layer, k_new, v_new)
            assert torch.equal(k_all[:, :, :-1], written[layer][0])
            assert torch.equal(v_all[:, :, :-1], written[layer][1])
        written = [(torch.cat((k, k_new), 2), torch.cat((v, v_new), 2)) for k, v in written]
        cache.advance(1)


@pytest.mark.parametrize("cls", [ConcatCache, StaticCache])
def test_expand_repeats_each_row(cls):
    cache = cls(L, 16)
    written = fill(cache, steps=(5,))
    cache.expand(3)
    k_all, _ = cache.update(0, *kv(1, b=3 * B))
    assert torch.equal(k_all[:, :, :5], written[0][0].repeat_interleave(3, dim=0))


def test_static_cache_refuses_to_overflow():
    cache = StaticCache(L, 6)
    fill(cache, steps=(5, 1))
    with pytest.raises(ValueError, match="6 positions"):
        cache.update(0, *kv(1))


def test_make_cache_by_name():
    assert set(CACHE_STRATEGIES) == {"none", "concat", "static"}
    assert make_cache("none", "gather", L, 8) is None
    assert isinstance(make_cache("static", "gather", L, 8), StaticCache)
    assert isinstance(make_cache("concat", "shared-prefix", L, 8), SharedPrefixCache)
    with pytest.raises(ValueError, match="concat"):
        make_cache("paged", "gather", L, 8)
    with pytest.raises(ValueError, match="shared-prefix"):
        make_cache("static", "copy", L, 8)


@pytest.mark.parametrize("inner", ["concat", "static"])
def test_shared_prefix_attention_equals_a_full_cache(inner):
    """The prompt held once per problem must give the same logits as a cache copied per beam."""
    torch.manual_seed(0)
    model = GPT(PRESETS["tiny"]).eval()
    prompts = torch.randint(1, 31, (2, 6))
    K = 3
    steps = torch.randint(1, 31, (4, 2 * K))
    beam_moves = [torch.tensor([0, 0, 2, 5, 3, 3]), torch.tensor([1, 2, 0, 4, 4, 5]), torch.tensor([2, 1, 0, 3, 4, 5])]
    with torch.no_grad():
        outs = []
        for cache in (make_cache(inner, "gather", 2, 12), make_cache(inner, "shared-prefix", 2, 12, max_new=4)):
            model(prompts, cache=cache)
            cache.advance(6)
            cache.expand(K)
            logits = []
            for t, tok in enumerate(steps):
                logits.append(model(tok[:, None], cache=cache))
                cache.advance(1)
                if t < len(beam_moves):
                    cache.reorder(beam_moves[t])
            outs.append(torch.cat(logits, 1))
            assert cache.pos == 10
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)


def test_shared_prefix_keeps_the_prompt_once():
    full, shared = make_cache("static", "gather", L, 12), make_cache("static", "shared-prefix", L, 12, max_new=2)
    for cache in (full, shared):
        fill(cache, steps=(10,))
        cache.expand(8)
        for layer in range(L):
            cache.update(layer, *kv(1, b=8 * B))
        cache.advance(1)
    assert shared.nbytes < full.nbytes / 3  # (3 x 10 + 24 x 2) vs 24 x 12 positions


def test_static_buffers_are_zeros_only_when_asked():
    """The compiled step reads whole buffers (masked), so make_cache(zeroed=True) starts them and the reorder
    spares as zeros; otherwise the unwritten positions are left as they are (never read)."""
    k = torch.ones(2, 1, 1, 4)
    cache = make_cache("static", "gather", 1, 5, zeroed=True)
    cache.update(0, k, k)
    cache.advance(1)
    cache.reorder(torch.tensor([1, 0]))
    assert torch.equal(cache.k[0][:, :, 1:], torch.zeros(2, 1, 4, 4)) and torch.equal(cache.k[0][:, :, :1], k)
    inner = make_cache("static", "shared-prefix", 1, 5, zeroed=True).inner
    assert isinstance(inner, StaticCache) and inner.zeroed
    assert not make_cache("static", "gather", 1, 5).zeroed
