"""engine.decoding.hf: transformers generate() on the exported weights returns what our decoders return."""
import pytest
import torch

from engine import hf_decode
from engine.bench.util import problems, run_ours
from engine.checkpoint import export_hf
from engine.decoding import DecodeOptions, Decoded, preset
from engine.decoding import left_pad
from engine.decoding.hf import generate_kwargs
from engine.model import GPT, PRESETS
from engine.tokenizer import PAD_ID, SEP_ID, encode


@pytest.fixture(scope="module")
def models():
    """A random tiny model whose END logit is raised enough that some beams finish early, and its export."""
    torch.manual_seed(5)
    model = GPT(PRESETS["tiny"]).eval()
    with torch.no_grad():
        model.head.weight[SEP_ID] *= 8.0
    return model, export_hf(model)


def _prompts(n=3):
    """Prompts of different lengths, so batches need padding."""
    pairs = [(2, 2), (3, 3), (2, 3)]
    return [encode(problems(pairs[k % 3], 1 + k // 3)[k // 3].prompt) + [SEP_ID] for k in range(n)]


def test_left_pad_right_aligns_prompts():
    ids, mask = left_pad([[5, 6, 9], [7, 9]])
    assert ids.tolist() == [[5, 6, 9], [PAD_ID, 7, 9]]
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1]]
    with pytest.raises(ValueError):
        left_pad([[]])


def test_generate_kwargs_match_our_decoders():
    beam = generate_kwargs(DecodeOptions(decoder="beam", width=5, max_new=40), block_size=300, prompt_len=20)
    assert beam["num_beams"] == beam["num_return_sequences"] == 5
    assert beam["length_penalty"] == 0.0 and beam["early_stopping"] is False and beam["do_sample"] is False
    assert beam["eos_token_id"] == SEP_ID and beam["pad_token_id"] == PAD_ID and beam["max_new_tokens"] == 40
    greedy = generate_kwargs(DecodeOptions(decoder="greedy", width=1, max_new=40), block_size=300, prompt_len=280)
    assert greedy["num_beams"] == 1 and greedy["max_new_tokens"] == 20  # clipped to the block
    with pytest.raises(ValueError, match="greedy and beam"):
        generate_kwargs(DecodeOptions(decoder="sample", width=1), block_size=300, prompt_len=20)


def test_greedy_batch_matches_ours(models):
    """Left padding, positions and the END handling must line up with our batched greedy decoder."""
    model, hf_model = models
    prompts = _prompts(3)
    opts = preset("fastest", decoder="greedy", width=1, max_new=12)
    ours, theirs = run_ours(model, prompts, opts), hf_decode(hf_model, prompts, opts)
    assert isinstance(theirs, Decoded) and theirs.steps == () and theirs.total_ms > 0
    for a, b in zip(ours.hypotheses, theirs.hypotheses):
        assert len(b) == 1
        assert a[0].ids == b[0].ids and a[0].finished == b[0].finished
        assert a[0].score == pytest.approx(b[0].score, abs=1e-3)


@pytest.mark.parametrize("width", [1, 4])
def test_beam_matches_ours_hypothesis_for_hypothesis(models, width):
    """Same candidates, same finished-beam rule, same order: every returned beam is identical."""
    model, hf_model = models
    opts = preset("fastest", decoder="beam", width=width, max_new=10, length_penalty=0.0)
    finished = 0
    for prompt in _prompts(3):
        ours, theirs = run_ours(model, [prompt], opts), hf_decode(hf_model, [prompt], opts)
        assert len(theirs.hypotheses[0]) == width
        assert [h.ids for h in ours.hypotheses[0]] == [h.ids for h in theirs.hypotheses[0]]
        assert [h.finished for h in ours.hypotheses[0]] == [h.finished for h in theirs.hypotheses[0]]
        for a, b in zip(ours.hypotheses[0], theirs.hypotheses[0]):
            assert a.score == pytest.approx(b.score, abs=1e-3)
        finished += sum(h.finished for h in theirs.hypotheses[0])
    assert finished > 0, "the END path was not exercised"
