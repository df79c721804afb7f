"""The 31-token vocabulary: ids exactly as in DESIGN.md, lossless round trip, unknown tokens are errors."""
import random

import pytest

from engine.data import ALL_PAIRS, random_problem
from engine.tokenizer import (FULL_VOCAB, PAD_ID, SEP_ID, STOI, VOCAB, VOCAB_SIZE, TokenizerError, decode, decode_text,
                              encode, vocab_for)

DESIGN_VOCAB = "□ a b c d e x y z ⁇ ? a0 a1 b0 b1 N P & + * ^ 0 1 2 3 4 5 6 7 8 9".split()


def test_ids_are_exactly_the_design_order():
    """Seed checkpoints and files depend on these ids; a reordering silently breaks them."""
    assert list(VOCAB) == DESIGN_VOCAB
    assert VOCAB_SIZE == 31
    assert PAD_ID == 0 and VOCAB[PAD_ID] == "□"
    assert SEP_ID == 9 and VOCAB[SEP_ID] == "⁇"
    assert {t: STOI[t] for t in DESIGN_VOCAB} == {tok: i for i, tok in enumerate(DESIGN_VOCAB)}
    # compact prompt formats only add tokens after id 30
    assert vocab_for("seed") == vocab_for("e0") == VOCAB and vocab_for("e1")[:VOCAB_SIZE] == VOCAB
    assert [STOI[d] for d in "0123456789"] == list(range(21, 31))
    assert (STOI["N"], STOI["P"], STOI["+"], STOI["*"], STOI["^"]) == (15, 16, 18, 19, 20)


def test_design_example_ids():
    assert encode("+ N 2 4 0 ⁇ * P 1 a") == [18, 15, 23, 25, 21, 9, 19, 16, 22, 1]


def test_round_trip_on_thousands_of_problem_lines():
    rng = random.Random(0)
    lines = [random_problem(rng, i, j).line() for i, j in ALL_PAIRS for _ in range(250)]
    for line in lines:
        ids = encode(line)
        assert all(0 <= i < VOCAB_SIZE for i in ids)
        assert decode_text(ids) == line
        assert decode(ids) == line.split()
        assert encode(line.split()) == ids


def test_every_token_round_trips():
    assert decode(encode(list(VOCAB))) == list(VOCAB)
    assert decode(range(VOCAB_SIZE)) == list(VOCAB)


@pytest.mark.parametrize("tokens, position", [
    ("+ P 1 2 - P 3", 4),
    (["P", "12"], 1),
    (["P", ""], 1),
    ("f", 0),
])
def test_unknown_token_is_an_error_not_dropped(tokens, position):
    with pytest.raises(TokenizerError, match=f"position {position}"):
        encode(tokens)


def test_seed_vocabulary_refuses_prompt_only_tokens():
    """A seed-format model must not be fed e1 tokens (ids it has no embedding for)."""
    with pytest.raises(TokenizerError, match="position 1"):
        encode(["P", "[012]"])
    assert encode(["P", "[012]"], len(vocab_for("e1"))) == [STOI["P"], STOI["[012]"]]


@pytest.mark.parametrize("ids", [[1, len(FULL_VOCAB)], [-1], [0, 5, 10**6]])
def test_unknown_id_is_an_error(ids):
    with pytest.raises(TokenizerError, match="unknown token id"):
        decode(ids)
