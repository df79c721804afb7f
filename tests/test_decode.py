"""Decoders: every speed option gives the same output, beam bookkeeping, batching, errors, answers."""
import copy
import itertools

import pytest
import torch

from engine.device import pick_device
from engine.decoding import (ATTENTIONS, BEAM_CACHES, CACHES, DECODE_PRESETS, DecodeOptions, Hypothesis, best_answer,
                           decode, options, preset, rank_answers, run_to_completion, solve)
from engine.model import GPT, PRESETS, GPTConfig
from engine.poly import compose, to_prefix
from engine.tokenizer import SEP_ID, encode

PROMPTS = [[16, 22, 23, 9], [18, 16, 3, 4, 5, 6, 7, 16, 25, 9], [16, 1, 9], [19, 16, 27, 1, 18, 15, 22, 9]]


def random_model(seed: int = 0, std: float = 0.2) -> GPT:
    """A tiny GPT with weights spread wide enough that beams differ clearly and END comes at varied steps."""
    torch.manual_seed(seed)
    model = GPT(PRESETS["tiny"]).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" not in name:
                p.normal_(0, std)
    return model



@pytest.fixture(scope="module")
def model():
    return random_model()


def outcome(result):
    """Everything an option must not change: per problem the hypotheses and the whole beam tree."""
    hyps = [[(h.ids, h.finished) for h in hs] for hs in result.hypotheses]
    scores = [[h.score for h in hs] for hs in result.hypotheses]
    tree = [[(b.problem, b.ids, b.parent, b.finished) for b in s.beams] for s in result.steps]
    return hyps, scores, tree


def run(model, prompts, **kw):
    return run_to_completion(decode(model, prompts, DecodeOptions(**kw)))


@pytest.mark.parametrize("kw", [dict(decoder="beam", width=4), dict(decoder="greedy", width=1),
                                dict(decoder="sample", width=1, samples=3, seed=5)])
def test_alternatives_are_the_top_tokens_and_change_nothing_else(model, kw):
    """Guards against the beam tree's losing tokens changing the search: with alternatives=3 every step and
    answer equals the run without them, and each beam carries the 3 best tokens of the distribution its last
    token came from (its own token among them when greedy or beam chose it from the top 3)."""
    plain = run(model, PROMPTS, max_new=10, **kw)
    rich = run(model, PROMPTS, max_new=10, alternatives=3, **kw)
    assert outcome(rich)[0] == outcome(plain)[0] and outcome(rich)[2] == outcome(plain)[2]
    assert outcome(rich)[1] == outcome(plain)[1]  # bit for bit: the same tensors, only read once more
    assert all(b.alternatives == () for s in plain.steps for b in s.beams)
    for s in rich.steps:
        for b in s.beams:
            alts = b.alternatives
            assert len(alts) == 3 and [lp for _, lp in alts] == sorted((lp for _, lp in alts), reverse=True)
            assert sum(torch.tensor([lp for _, lp in alts]).exp()) <= 1 + 1e-5
            parent = 0.0 if s.step == 0 else rich.steps[s.step - 1].beams[b.parent].score
            if kw["decoder"] == "greedy":
                assert alts[0][0] == b.ids[-1]  # greedy takes the top token
                assert alts[0][1] == pytest.approx(b.score - parent, abs=1e-5)
            elif kw["decoder"] == "beam" and b.ids[-1] in dict(alts):
                assert dict(alts)[b.ids[-1]] == pytest.approx(b.score - parent, abs=1e-4)


@pytest.mark.parametrize("width", [1, 3, 10])
def test_every_option_gives_the_same_beams(model, width):
    """Guards against an optimisation (cache, beam cache, attention, masks, seed loop) changing the output."""
    ref_h, ref_s, ref_t = outcome(run(model, PROMPTS, width=width, max_new=14, cache="none"))
    assert any(len(h) for hs in ref_h for h, _ in hs), "the test model should generate some tokens"
    combos = [dict(cache=c, beam_cache=b, attention=a) for c, b, a in itertools.product(CACHES, BEAM_CACHES, ATTENTIONS)]
    combos += [dict(cache="concat", one_at_a_time=True), dict(cache="none", one_at_a_time=True),
               dict(cache="static", rebuild_masks=True, grad_mode="no_grad")]
    combos += [dict(cache="static", beam_cache=b, attention=a, compile="inductor")  # decoding/compiled.py
               for b, a in itertools.product(("gather", "clone"), ATTENTIONS)]
    combos += [dict(cache=c, beam_cache=b, linear=lin)  # decoding/precision.py: transposed / oneDNN / tiled weights
               for c, b, lin in itertools.product(("concat", "static"), BEAM_CACHES, ("packed", "tiled"))]
    combos += [dict(cache="none", linear=lin) for lin in ("packed", "tiled")]
    combos += [dict(cache="concat", one_at_a_time=True, linear=lin) for lin in ("packed", "tiled")]
    combos += [dict(cache="static", beam_cache=b, attention=a, linear=lin, step=st)  # decoding/fused.py
               for b, a, lin, st in itertools.product(BEAM_CACHES, ATTENTIONS, ("aten", "packed", "tiled"),
                                                      ("fused", "native"))]
    combos += [dict(cache="static", step="native", rebuild_masks=True, grad_mode="no_grad")]
    combos += [dict(cache="static", step="fused", rebuild_masks=True, grad_mode="no_grad")]
    for kw in combos:
        h, s, t = outcome(run(model, PROMPTS, width=width, max_new=14, **kw))
        assert h == ref_h, kw
        assert t == ref_t, kw
        for a, b in zip(s, ref_s):
            assert a == pytest.approx(b, abs=1e-4), kw


def test_finished_and_cut_beams_both_occur(model):
    """The matrix above is only meaningful if some beams end with END and some are cut by max_new."""
    result = run(model, PROMPTS, width=10, max_new=14)
    flags = {h.finished for hs in result.hypotheses for h in hs}
    assert flags == {True, False}


@pytest.mark.parametrize("cache", CACHES)
def test_width_one_equals_greedy(model, cache):
    """Guards against beam search diverging from greedy when it keeps a single beam."""
    greedy = run(model, PROMPTS, decoder="greedy", max_new=14, cache=cache)
    beam = run(model, PROMPTS, width=1, max_new=14, cache=cache)
    for g, b in zip(greedy.hypotheses, beam.hypotheses):
        assert (g[0].ids, g[0].finished) == (b[0].ids, b[0].finished)
        assert g[0].score == pytest.approx(b[0].score, abs=1e-4)


@pytest.mark.parametrize("decoder,width", [("beam", 5), ("greedy", 1)])
def test_mixed_length_batch_equals_one_at_a_time(model, decoder, width):
    """Guards against padding leaking into attention or positions in a batch of different lengths."""
    batch = run(model, PROMPTS, decoder=decoder, width=width, max_new=12)
    for prompt, hyps in zip(PROMPTS, batch.hypotheses):
        alone = run(model, [prompt], decoder=decoder, width=width, max_new=12).hypotheses[0]
        assert [h.ids for h in hyps] == [h.ids for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-4)


def test_sampling_with_the_same_seed_repeats(model):
    """Guards against hidden global randomness: the explicit seed alone fixes the samples."""
    kw = dict(decoder="sample", max_new=12, temperature=1.5, top_k=10, top_p=0.9)
    a = run(model, PROMPTS, seed=7, **kw)
    torch.manual_seed(123)  # the global RNG must not matter
    b = run(model, PROMPTS, seed=7, **kw)
    c = run(model, PROMPTS, seed=8, **kw)  # the same prompts: only the seed differs
    assert a.hypotheses == b.hypotheses
    assert [h[0].ids for h in a.hypotheses] != [h[0].ids for h in c.hypotheses], "the seed must change the samples"


def test_sampling_with_top_k_one_is_greedy(model):
    greedy = run(model, PROMPTS, decoder="greedy", max_new=10)
    sampled = run(model, PROMPTS, decoder="sample", top_k=1, max_new=10, seed=3)
    assert [h[0].ids for h in greedy.hypotheses] == [h[0].ids for h in sampled.hypotheses]


def test_beam_tree_is_consistent(model):
    """The UI draws the tree from parents: each beam extends its parent by one token, in its problem."""
    result = run(model, PROMPTS, width=4, max_new=10)
    prev = None
    for step in result.steps:
        for b in step.beams:
            assert len(b.ids) == step.step + 1
            if prev is None:
                assert b.parent == -1
            else:
                parent = prev.beams[b.parent]
                assert parent.problem == b.problem and not parent.finished and parent.ids == b.ids[:-1]
            if b.finished and step.step < 9:
                assert b.ids[-1] == SEP_ID
        prev = step
    for hyps in result.hypotheses:
        assert len(hyps) == 4
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert all(SEP_ID not in h.ids for h in hyps)


def test_width_beyond_the_vocabulary(model):
    """The seed capped the width at the vocabulary size; 64 beams over 31 tokens must work."""
    result = run(model, PROMPTS[:2], width=64, max_new=6)
    for hyps in result.hypotheses:
        assert len(hyps) == 64
        assert len({h.ids for h in hyps}) == 64


def test_step_events_carry_timing_and_cache_size(model):
    steps = list(decode(model, PROMPTS, DecodeOptions(width=3, max_new=5, cache="static")))
    assert steps and all(s.elapsed_ms >= 0 for s in steps)
    assert all(s.cache_bytes > 0 for s in steps)
    none = list(decode(model, PROMPTS, DecodeOptions(width=3, max_new=5, cache="none")))
    assert all(s.cache_bytes == 0 for s in none)


def test_length_penalty_ranks_by_normalised_score(model):
    result = run(model, PROMPTS, width=6, max_new=12, length_penalty=1.0)
    for hyps in result.hypotheses:
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_profiler_labels(model):
    """The profiler tab splits time by these labels; they must all appear."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(model, PROMPTS, width=3, max_new=5, beam_cache="gather")
        run(model, PROMPTS, width=3, max_new=5, beam_cache="clone")
    names = {e.name for e in prof.events()}
    assert {"prefill", "decode_step", "cache_reorder", "cache_clone", "beam_select"} <= names


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_beams(model):
    """The engine runs on CUDA where present; the beams must not depend on the device."""
    cpu = run(model, PROMPTS, width=5, max_new=10)
    gpu_model = copy.deepcopy(model).to(pick_device("cuda"))
    for kw in (dict(cache="static", beam_cache="shared-prefix"), dict(cache="concat", beam_cache="clone"),
               dict(cache="none", decoder="greedy")):
        ref = cpu if kw.get("decoder") != "greedy" else run(model, PROMPTS, max_new=10, **kw)
        gpu = run(gpu_model, PROMPTS, width=5, max_new=10, **kw)
        assert [[h.ids for h in hs] for hs in gpu.hypotheses] == [[h.ids for h in hs] for hs in ref.hypotheses]


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="cpu or cuda"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("kw,msg", [
    (dict(width=0), "width"), (dict(width=65), "width"), (dict(decoder="nucleus"), "decoder"),
    (dict(cache="paged"), "cache"), (dict(beam_cache="copy"), "beam_cache"), (dict(attention="flash"), "attention"),
    (dict(max_new=0), "max_new"), (dict(temperature=0.0), "temperature"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(top_k=-1), "top_k"), (dict(grad_mode="enable"), "grad_mode"),
    (dict(compile="jit"), "compile"), (dict(compile="inductor", cache="concat"), "static KV cache"),
    (dict(compile="inductor", cache="static", beam_cache="shared-prefix"), "shared-prefix"),
    (dict(compile="inductor", cache="static", rebuild_masks=True), "masks built once"),
    (dict(compile="inductor", cache="static", precision="bf16"), "fp32"),
    (dict(compile="inductor", cache="static", linear="packed"), "linear=aten"), (dict(linear="mkl"), "linear"),
    (dict(step="cuda"), "step"), (dict(step="fused", cache="concat"), "static KV cache"),
    (dict(step="fused", compile="inductor", linear="aten"), "compile=off"),
    (dict(step="fused", one_at_a_time=True), "batched"), (dict(step="fused", precision="int8-dynamic"), "float")])
def test_bad_options_are_clear_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DecodeOptions(**kw)


def test_unknown_preset():
    with pytest.raises(ValueError, match="V1"):
        preset("V4")


def test_too_long_input_is_a_clear_error():
    """The seed crashed with an IndexError past the block size; we refuse up front and say why."""
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=24))
    with pytest.raises(ValueError, match=r"20 tokens.*block size of 24"):
        decode(model, [[16, 1] * 9 + [16, 9]], DecodeOptions(max_new=8))
    run_to_completion(decode(model, [[16, 1] * 9 + [16, 9]], DecodeOptions(max_new=4, width=2)))


def test_presets_exist_and_differ():
    assert set(DECODE_PRESETS) == {"V1", "V2", "V3", "fastest"}
    assert DECODE_PRESETS["V1"].cache == "none" and DECODE_PRESETS["V2"].cache == "concat"
    assert DECODE_PRESETS["V3"].cache == "static" and not DECODE_PRESETS["V3"].rebuild_masks
    assert preset("V3", decoder="greedy").decoder == "greedy"
    # V1 and V2 keep F.linear through the nn.Modules; V3 adds the CPU-laid-out weights and the fused step (both
    # exact: in the equivalence matrix); fastest also shares the prompt and runs the native attention
    assert [DECODE_PRESETS[n].linear for n in ("V1", "V2", "V3")] == ["aten", "aten", "tiled"]
    assert [DECODE_PRESETS[n].step for n in ("V1", "V2", "V3", "fastest")] == ["modules", "modules", "fused", "native"]
    assert DECODE_PRESETS["fastest"].beam_cache == "shared-prefix" != DECODE_PRESETS["V3"].beam_cache
    compiled = options("V3", compile="inductor")  # a compiled step picks its own kernels and is its own step
    assert (compiled.linear, compiled.step) == ("aten", "modules")
    assert options("V3", cache="concat").step == "modules"  # the fused step runs on the static cache only


# ---------------------------------------------------------------- answers

class ScriptedModel(torch.nn.Module):
    """Emits a fixed token script (then END) after a prompt of known length: for answer and stop tests.

    It reads only the sequence length, so it needs the "none" cache (the whole sequence every step).
    """

    def __init__(self, script: list[int], prompt_len: int):
        super().__init__()
        self.config = GPTConfig(n_layer=1, n_head=1, n_embd=4, block_size=300)
        self.script, self.prompt_len = script, prompt_len
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, idx, pos=None, mask=None, cache=None, attention="sdpa", last_only=False):
        n = idx.size(1) - self.prompt_len  # tokens generated so far
        logits = torch.full((idx.size(0), 1, 31), -5.0)
        logits[:, :, self.script[n] if n < len(self.script) else SEP_ID] = 5.0
        return logits


def test_solve_verifies_and_recovers_p():
    q, p = (3, -2, 1), (7, -5, 3)
    f = compose(p, q)
    model = ScriptedModel(encode(to_prefix(q)), prompt_len=len(encode(to_prefix(f))) + 1)
    (answers,) = solve(model, [f], DecodeOptions(decoder="greedy", cache="none", max_new=30))
    best = best_answer(answers)
    assert best.verified and best.q == q and best.outer == p and best.reason == ""
    assert best.prefix == to_prefix(q)


def test_max_new_cuts_and_marks_unfinished():
    model = ScriptedModel([18] * 50, prompt_len=3)
    result = run(model, [[16, 1, 9]], decoder="greedy", cache="none", max_new=5)
    (h,) = result.hypotheses[0]
    assert h.ids == (18,) * 5 and not h.finished


def test_rank_answers_reports_unparsable_and_trivial():
    f = compose((1, 2, 3), (0, 1, 1))
    hyps = [Hypothesis(tuple(encode("+ P")), -1.0, True), Hypothesis(tuple(encode("* P 1 a")), -2.0, True),
            Hypothesis(tuple(encode(to_prefix((0, 1, 1)))), -3.0, True)]
    answers = rank_answers(f, hyps)
    assert answers[0].q is None and not answers[0].verified and "parse" in answers[0].reason
    assert answers[1].q == (0, 1) and not answers[1].verified and "trivial" in answers[1].reason
    assert answers[2].verified and answers[2].outer == (1, 2, 3)
    assert best_answer(answers) is answers[2]
    assert best_answer(answers[:2]) is answers[0]
    assert best_answer([]) is None
