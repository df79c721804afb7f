"""The GPT: presets, the seed's parameter count, causality, caches, masks and positions."""
import dataclasses

import pytest
import torch

from engine.decoding.cache import make_cache
from engine.model import GPT, PRESETS, GPTConfig, state_shapes



@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(PRESETS["tiny"]).eval()


def test_paper_preset_has_the_seed_parameter_count():
    """The seed's model: 6 layers, 8 heads, 512 wide, block 300 = 19,100,672 parameters."""
    cfg = PRESETS["paper"]
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (6, 8, 512, 300)
    assert GPT(cfg).num_params() == 19_100_672


def test_config_is_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["tiny"].n_layer = 3
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)
    assert set(PRESETS) >= {"tiny", "default", "paper"}


def test_plain_call_is_causal(model):
    """Training calls model(x): position t must not see tokens after t."""
    x = torch.randint(0, 31, (2, 12))
    y = x.clone()
    y[:, 8:] = torch.randint(0, 31, (2, 4))
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (2, 12, 31)
    torch.testing.assert_close(a[:, :8], b[:, :8])


@pytest.mark.parametrize("attention", ["math", "sdpa"])
@pytest.mark.parametrize("strategy", ["concat", "static"])
def test_cached_logits_equal_the_full_forward(model, strategy, attention):
    """Guards against a cache that drops or misplaces keys, or positions that do not advance."""
    x = torch.randint(0, 31, (3, 14))
    with torch.no_grad():
        full = model(x, attention=attention)
        cache = make_cache(strategy, "gather", model.config.n_layer, 14)
        parts = [model(x[:, :9], cache=cache, attention=attention)]
        cache.advance(9)
        parts.append(model(x[:, 9:11], cache=cache, attention=attention))  # several new tokens at once
        cache.advance(2)
        for t in range(11, 14):
            parts.append(model(x[:, t:t + 1], cache=cache, attention=attention, last_only=True))
            cache.advance(1)
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["math", "sdpa"])
def test_fixed_shape_step_equals_the_cached_forward(model, attention):
    """Guards against GPT.decode_step (the compiled step: whole buffers, write position as a tensor, unwritten
    and padded positions masked) drifting from forward() with a cache, including left padding."""
    torch.manual_seed(1)
    x = torch.randint(0, 31, (2, 12))
    L = 16  # buffer end beyond the last position: those keys must be masked
    keys_ok = torch.ones(2, L, dtype=torch.bool)
    keys_ok[1, :3] = False  # row 1: three padding positions on the left
    pos = (torch.arange(12)[None] - torch.tensor([[0], [3]])).clamp(min=0)
    square = keys_ok[:, None, None, :9] & torch.ones(9, 9, dtype=torch.bool).tril()[None, None]
    square |= torch.eye(9, dtype=torch.bool)  # padded queries see themselves (no empty softmax row)
    with torch.no_grad():
        cache, ref_cache = (make_cache("static", "gather", model.config.n_layer, L, zeroed=True) for _ in range(2))
        for c in (cache, ref_cache):  # the same prefill into both
            model(x[:, :9], pos=pos[:, :9], mask=square, cache=c, attention=attention)
            c.advance(9)
        for t in range(9, 12):
            ref = model(x[:, t:t + 1], pos=pos[:, t:t + 1], mask=keys_ok[:, None, None, :t + 1], cache=ref_cache,
                        attention=attention, last_only=True)[:, 0]
            ref_cache.advance(1)
            got = model.decode_step(x[:, t], pos[:, t], torch.tensor(t), keys_ok, cache.k, cache.v, attention)
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert all(torch.isfinite(b).all() for b in cache.k)


def test_math_and_sdpa_agree(model):
    x = torch.randint(0, 31, (2, 20))
    mask = torch.ones(2, 1, 20, 20, dtype=torch.bool).tril()
    mask[0, :, :, :3] = False
    mask[0, 0, :3, :3] = torch.eye(3, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model(x, attention="math"), model(x, attention="sdpa"), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x, mask=mask, attention="math"), model(x, mask=mask, attention="sdpa"),
                                   atol=1e-5, rtol=1e-5)


def test_left_padding_with_mask_and_positions_equals_alone(model):
    """A short prompt left-padded in a batch (positions from 0, padding masked) gives its own logits."""
    short = torch.randint(1, 31, (1, 6))
    pad = 4
    x = torch.cat((torch.zeros(1, pad, dtype=torch.long), short), 1)
    pos = (torch.arange(10) - pad).clamp(min=0)[None]
    valid = torch.arange(10) >= pad
    mask = (torch.ones(10, 10, dtype=torch.bool).tril() & (valid[None, :] | torch.eye(10, dtype=torch.bool)))
    with torch.no_grad():
        for attention in ("math", "sdpa"):
            padded = model(x, pos=pos, mask=mask[None, None], attention=attention)
            assert not torch.isnan(padded).any()  # padded query rows attend themselves: never fully masked
            torch.testing.assert_close(padded[:, pad:], model(short, attention=attention), atol=1e-5, rtol=1e-5)


def test_block_size_and_backend_errors(model):
    with pytest.raises(ValueError, match="block size"):
        model(torch.zeros(1, 301, dtype=torch.long))
    with pytest.raises(ValueError, match="sdpa"):
        model(torch.zeros(1, 3, dtype=torch.long), attention="flash")


def test_last_only_is_the_last_position(model):
    x = torch.randint(0, 31, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(x, last_only=True), model(x)[:, -1:])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_state_shapes_match_the_model(name):
    """Checkpoint validation reads shapes from state_shapes() instead of building the model: it must name
    exactly the tensors GPT has, with their shapes (guards against the two drifting apart)."""
    cfg = dataclasses.replace(PRESETS[name], n_layer=2, block_size=40)
    assert state_shapes(cfg) == {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}
