"""The shipped model: it loads by default, is small, is marked trained, and solves a known (2,2) problem."""
import os

from engine import DEFAULT_CHECKPOINT, from_prefix, load_checkpoint, preset, solve

# DESIGN.md's example: f = -240 + 215a + 638a² - 320a³ - 512a⁴ = P(12 - 5a - 16a²).
KNOWN_F = "+ N 2 4 0 + * P 2 1 5 a + * P 6 3 8 ^ a P 2 + * N 3 2 0 ^ a P 3 * N 5 1 2 ^ a P 4"


def test_shipped_weights_are_small_and_trained():
    assert os.path.getsize(DEFAULT_CHECKPOINT + ".safetensors") < 20 * 2**20
    model, meta = load_checkpoint()
    assert meta["trained"] and meta["finished"] and meta["steps"] > 1000
    assert "recipe" in meta and meta["train_minutes"] > 0


def test_beam_search_verifies_a_known_problem():
    """Guards against shipping weights that do not load or no longer solve an easy in-distribution problem."""
    model, _ = load_checkpoint()
    f = from_prefix(KNOWN_F)
    (answers,) = solve(model, [f], preset("fastest", decoder="beam", width=10))
    verified = [a for a in answers if a.verified]
    assert verified, [a.prefix for a in answers]
    assert verified[0].outer is not None and len(verified[0].outer) == 3  # P of degree 2
