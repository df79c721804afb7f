"""Verified search: stop_on_verified (beam and best-of-N), cascades, and the acceptance check.

The scripted acceptance checks here accept answers chosen from a plain run of the same decoder, so each test
knows the step at which a problem must stop."""
import itertools

import pytest

from engine.decoding import (ATTENTIONS, BEAM_CACHES, CACHES, DecodeOptions, check_answer, decode,
                             decode_polynomials, options, parse_stages, run_to_completion, solve, verifier)
from engine.poly import compose, to_prefix
from engine.tokenizer import encode

from test_decode import PROMPTS, ScriptedModel, outcome, random_model

MAX_NEW = 14


@pytest.fixture(scope="module")
def model():
    return random_model()


def run(model, prompts, accept=None, **kw):
    return run_to_completion(decode(model, prompts, DecodeOptions(max_new=MAX_NEW, **kw), accept))


def finished_by_step(result) -> dict[int, list[tuple[int, tuple[int, ...]]]]:
    """problem -> [(step, answer ids)] of every beam that ended with END, in the order the decoder saw them."""
    out: dict[int, list] = {}
    for s in result.steps:
        for b in s.beams:
            if b.finished and b.ids[-1:] == tuple(encode("⁇")):
                out.setdefault(b.problem, []).append((s.step, b.ids[:-1]))
    return out


def targets(result, hypotheses) -> dict[int, tuple[int, tuple[int, ...]]]:
    """For every problem, a returned hypothesis that ended with END and the step at which it finished; when
    several finished hypotheses qualify, the last to finish (so that stopping saves nothing trivial)."""
    out = {}
    for p, seen in finished_by_step(result).items():
        kept = {h.ids for h in hypotheses[p] if h.finished}
        hits = [(step, ids) for step, ids in seen if ids in kept]
        if hits:
            out[p] = hits[len(hits) // 2]
    return out


def scripted(accepted: dict[int, tuple[int, ...]]):
    calls = []

    def accept(problem, ids):
        calls.append((problem, tuple(ids)))
        return accepted.get(problem) == tuple(ids)

    accept.calls = calls
    return accept


# ---------------------------------------------------------------- beam: stop_on_verified

@pytest.mark.parametrize("width", [1, 3, 10])
def test_a_check_that_never_accepts_gives_plain_beam_search(model, width):
    """Guards against stop_on_verified changing the search itself (pruning, ranking, rows) before any stop."""
    plain = run(model, PROMPTS, width=width)
    never = scripted({})
    stopped = run(model, PROMPTS, never, width=width, stop_on_verified=True)
    assert outcome(stopped)[0] == outcome(plain)[0] and outcome(stopped)[2] == outcome(plain)[2]
    assert [s.cache_bytes for s in stopped.steps] == [s.cache_bytes for s in plain.steps]
    assert never.calls, "the check must have been consulted"
    assert all(reason != "verified" for s in stopped.steps for _, reason in s.stops)


@pytest.mark.parametrize("width", [2, 4])
def test_stop_on_verified_never_verifies_fewer_problems_than_the_full_search(model, width):
    """Until it stops, a problem's beams are the full search's, so any answer the full search returns and the
    check accepts was accepted on the way: the problems solved with the stop include the full search's (and
    may be more, when the full search pushes an accepted answer out of its final list)."""
    def accept(problem, ids):  # a check that accepts an arbitrary, fixed third of the answers
        return hash((problem, tuple(ids))) % 3 == 0

    def solved(result) -> set[int]:
        return {p for p, hyps in enumerate(result.hypotheses) if any(h.finished and accept(p, h.ids) for h in hyps)}

    plain = solved(run(model, PROMPTS, width=width))
    assert plain, "the check must accept something for the test to mean anything"
    assert plain <= solved(run(model, PROMPTS, accept, width=width, stop_on_verified=True))


def test_without_stop_on_verified_the_check_is_never_called(model):
    accept = scripted({})
    run(model, PROMPTS, accept, width=4)
    assert accept.calls == []


def test_scripted_check_stops_each_problem_at_its_step_and_removes_its_rows(model):
    """Each problem must stop exactly at the step where its accepted answer finished, its beams must vanish
    from later steps, the other problems must keep the beams of the full search, and the cache must hold
    exactly the rows of the problems still searching."""
    K = 4
    plain = run(model, PROMPTS, width=K, cache="static", beam_cache="gather")
    want = targets(plain, plain.hypotheses)
    assert len(want) >= 2, "the test model should finish several problems with END"
    accept = scripted({p: ids for p, (_, ids) in want.items()})
    stopped = run(model, PROMPTS, accept, width=K, cache="static", beam_cache="gather", stop_on_verified=True)
    stop_step = {p: s.step for s in stopped.steps for p, why in s.stops if why == "verified"}
    assert stop_step == {p: step for p, (step, _) in want.items()}
    per_row = plain.steps[0].cache_bytes // (len(PROMPTS) * K)
    searching = set(range(len(PROMPTS)))
    for s_plain, s in zip(plain.steps, stopped.steps):
        stopped_before = {p for p, step in stop_step.items() if step < s.step}
        assert not any(b.problem in stopped_before for b in s.beams)
        mine = [(b.problem, b.ids, b.finished) for b in s.beams]
        theirs = [(b.problem, b.ids, b.finished) for b in s_plain.beams if b.problem not in stopped_before]
        assert mine == theirs  # everyone else searches exactly as in the full search
        searching -= {p for p, _ in s.stops}
        if searching:  # (once every problem is done the cache is simply dropped)
            assert s.cache_bytes == per_row * K * len(searching)
    for p, (_, ids) in want.items():
        accepted = [b for s in stopped.steps for b in s.beams if b.accepted]
        assert [(b.problem, b.ids[:-1]) for b in accepted if b.problem == p] == [(p, ids)]
        assert ids in [h.ids for h in stopped.hypotheses[p]]


def test_stop_gives_the_full_search_answer_when_the_first_accepted_is_the_same(model):
    """The verified answer of a stopped search is the full search's best verified answer whenever the full
    search's best accepted hypothesis is the first one the stopping search accepts."""
    K = 5
    plain = run(model, PROMPTS, width=K)
    rule = lambda ids: sum(ids) % 3 == 0  # noqa: E731  an arbitrary but fixed "verifier"
    stopped = run(model, PROMPTS, lambda p, ids: rule(ids), width=K, stop_on_verified=True)
    compared = 0
    for p in range(len(PROMPTS)):
        full_best = next((h for h in plain.hypotheses[p] if h.finished and rule(h.ids)), None)
        first = next((b.ids[:-1] for s in stopped.steps for b in s.beams if b.problem == p and b.accepted), None)
        if full_best is None or first is None:
            assert (full_best is None) == (first is None)  # accuracy never changes
            continue
        stop_best = next(h for h in stopped.hypotheses[p] if h.finished and rule(h.ids))
        if first == full_best.ids:
            compared += 1
            assert stop_best.ids == full_best.ids
            assert stop_best.score == pytest.approx(full_best.score, abs=1e-4)
    assert compared >= 1, "the rule should let at least one problem stop on the full search's best answer"


@pytest.mark.parametrize("width", [3, 10])
def test_stop_on_verified_is_the_same_with_every_cache_option(model, width):
    """The equivalence matrix for stop_on_verified: cache, beam cache, attention and the seed's loop change
    speed only, also when problems leave the batch because an answer was accepted."""
    rule = lambda p, ids: sum(ids) % 4 == p % 4  # noqa: E731
    ref = outcome(run(model, PROMPTS, rule, width=width, cache="none", stop_on_verified=True))
    ref_stops = [s.stops for s in run(model, PROMPTS, rule, width=width, cache="none", stop_on_verified=True).steps]
    assert any(why == "verified" for stops in ref_stops for _, why in stops), "some problem should stop"
    combos = [dict(cache=c, beam_cache=b, attention=a)
              for c, b, a in itertools.product(CACHES, BEAM_CACHES, ATTENTIONS)]
    combos += [dict(cache="concat", one_at_a_time=True), dict(cache="static", rebuild_masks=True, grad_mode="no_grad")]
    for kw in combos:
        result = run(model, PROMPTS, rule, width=width, stop_on_verified=True, **kw)
        h, s, t = outcome(result)
        assert (h, t) == (ref[0], ref[2]), kw
        assert [st.stops for st in result.steps] == ref_stops, kw
        for a, b in zip(s, ref[1]):
            assert a == pytest.approx(b, abs=1e-4), kw


# ---------------------------------------------------------------- best-of-N sampling

SAMPLE = dict(decoder="sample", samples=6, temperature=1.3, seed=5)


def test_samples_option_equals_duplicated_prompts(model):
    """N samples of a problem in one batch (prefilled once) draw exactly what N copies of its prompt drew."""
    together = run(model, PROMPTS, **SAMPLE)
    copies = run(model, [p for p in PROMPTS for _ in range(6)], decoder="sample", temperature=1.3, seed=5)
    for k, hyps in enumerate(together.hypotheses):
        mine = [(h.ids, h.finished) for h in hyps]
        theirs = sorted((h for hs in copies.hypotheses[k * 6:(k + 1) * 6] for h in hs), key=lambda h: -h.score)
        assert mine == [(h.ids, h.finished) for h in theirs]
        assert len(hyps) == 6


def test_best_of_n_stops_a_problem_at_its_first_accepted_sample(model):
    prompt = [PROMPTS[1]]
    plain = run(model, prompt, **SAMPLE)
    ended = finished_by_step(plain)[0]
    assert len(ended) >= 3, "several samples should end with END"
    step, ids = ended[1]
    never = run(model, prompt, scripted({}), stop_on_verified=True, **SAMPLE)
    assert outcome(never) == outcome(plain)
    stopped = run(model, prompt, scripted({0: ids}), stop_on_verified=True, **SAMPLE)
    assert stopped.steps[-1].step == step and stopped.steps[-1].stops == ((0, "verified"),)
    assert [s.beams for s in stopped.steps[:-1]] == [s.beams for s in plain.steps[:step]]
    assert ids in [h.ids for h in stopped.hypotheses[0]]
    assert len(stopped.hypotheses[0]) < 6  # the samples still running were dropped


# ---------------------------------------------------------------- cascades

def test_cascade_keeps_greedy_answers_and_each_stage_equals_running_it_alone(model):
    greedy = run(model, PROMPTS, decoder="greedy")
    solved = {0: greedy.hypotheses[0][0].ids, 2: greedy.hypotheses[2][0].ids}
    beam3 = run(model, PROMPTS, width=3)
    solved[1] = beam3.hypotheses[1][-1].ids  # settled by the second stage, by its last-ranked hypothesis
    accept = scripted(solved)
    result = run(model, PROMPTS, accept, decoder="cascade", cascade="greedy > beam 3 > beam 8")
    assert result.stage_of == (0, 1, 0, 2)
    assert result.hypotheses[0] == greedy.hypotheses[0] and result.hypotheses[2] == greedy.hypotheses[2]
    # stage 2 ran on problems 1 and 3 only, exactly as beam 3 alone on those two prompts
    alone = run(model, [PROMPTS[1], PROMPTS[3]], width=3)
    assert [h.ids for h in result.hypotheses[1]] == [h.ids for h in alone.hypotheses[0]]
    assert [h.score for h in result.hypotheses[1]] == pytest.approx([h.score for h in alone.hypotheses[0]], abs=1e-4)
    last = run(model, [PROMPTS[3]], width=8)
    assert [h.ids for h in result.hypotheses[3]] == [h.ids for h in last.hypotheses[0]]
    stages = [s.stage for s in result.steps]
    assert stages == sorted(stages) and set(stages) == {0, 1, 2}
    assert {b.problem for s in result.steps if s.stage == 1 for b in s.beams} == {1, 3}
    assert {b.problem for s in result.steps if s.stage == 2 for b in s.beams} == {3}
    assert result.total_ms >= sum(s.elapsed_ms for s in result.steps)


def test_cascade_stops_early_when_every_problem_is_settled(model):
    greedy = run(model, PROMPTS, decoder="greedy")
    accept = scripted({p: hs[0].ids for p, hs in enumerate(greedy.hypotheses)})
    result = run(model, PROMPTS, accept, decoder="cascade", cascade="greedy > beam 10")
    assert result.stage_of == (0,) * len(PROMPTS) and {s.stage for s in result.steps} == {0}
    assert outcome(result)[0] == outcome(greedy)[0]


def test_cascade_stages_pass_stop_on_verified_on(model):
    rule = lambda p, ids: sum(ids) % 4 == p % 4  # noqa: E731
    opts = dict(decoder="cascade", cascade="beam 3 > beam 6", stop_on_verified=True)
    result = run(model, PROMPTS, rule, **opts)
    first = run(model, PROMPTS, rule, width=3, stop_on_verified=True)
    n_first = len(first.steps)
    assert [s.stops for s in result.steps[:n_first]] == [s.stops for s in first.steps]


def test_later_cascade_stages_start_from_the_first_stages_prefill_with_the_same_outcome(model, monkeypatch):
    """The prompts go through the model once per cascade: the later stages take their keys, values and first
    logits from the first stage (cache.PromptStore), with every cache option, and the outcome is that of
    running each stage's own prefill (same tokens and beam tree, scores within 1e-4)."""
    from engine.decoding import cascade as cascade_module
    from engine.decoding.cache import PromptStore
    taken = []
    real_take = PromptStore.take
    monkeypatch.setattr(PromptStore, "take", lambda self, problems, P: taken.append(list(problems))
                        or real_take(self, problems, P))
    rule = lambda p, ids: sum(ids) % 3 == p % 3  # noqa: E731
    combos = [dict(cache=c, beam_cache=b, attention=a)
              for c, b, a in itertools.product(("concat", "static"), BEAM_CACHES, ATTENTIONS)]
    combos += [dict(step="fused"), dict(step="native", beam_cache="shared-prefix"), dict(stop_on_verified=True)]
    for kw in combos:
        opts = DecodeOptions(max_new=MAX_NEW, decoder="cascade", cascade="greedy > beam 3 > beam 6", **kw)
        fresh = outcome(run_to_completion(cascade_module.cascade(model, PROMPTS, opts, rule, reuse_prefill=False)))
        taken.clear()
        result = run_to_completion(cascade_module.cascade(model, PROMPTS, opts, rule))
        assert len(taken) == 2 and min(map(len, taken)) < len(PROMPTS), kw  # stages 2 and 3, on unsettled problems
        h, sc, tree = outcome(result)
        assert (h, tree) == (fresh[0], fresh[2]), kw
        for a, b in zip(sc, fresh[1]):
            assert a == pytest.approx(b, abs=1e-4), kw
        # one problem at a time the reused prefill is the same computation: identical scores
        one = [run_to_completion(cascade_module.cascade(model, [p], opts, lambda _, ids, i=i: rule(i, ids), reuse))
               for i, p in enumerate(PROMPTS) for reuse in (False, True)]
        for fresh_one, reused_one in zip(one[::2], one[1::2]):
            assert outcome(reused_one) == outcome(fresh_one), kw
    taken.clear()
    run(model, PROMPTS, rule, decoder="cascade", cascade="greedy > beam 3", cache="none")
    run(model, PROMPTS, rule, decoder="cascade", cascade="greedy > beam 3", one_at_a_time=True, cache="static")
    assert not taken, "cache=none and the seed's loop compute every stage's prefill"


def test_the_polynomial_verifier_settles_a_cascade_at_greedy():
    """With the default acceptance check (decomposition), a correct greedy answer ends the cascade."""
    q, p = (3, -2, 1), (7, -5, 3)
    f = compose(p, q)
    model = ScriptedModel(encode(to_prefix(q)), prompt_len=len(encode(to_prefix(f))) + 1)
    opts = DecodeOptions(decoder="cascade", cache="none", max_new=30)
    result = run_to_completion(decode_polynomials(model, [f], opts))
    assert result.stage_of == (0,) and {s.stage for s in result.steps} == {0}
    (answers,) = solve(model, [f], opts)
    assert answers[0].verified and answers[0].q == q


# ---------------------------------------------------------------- the acceptance check and options

def test_verifier_checks_answers_once():
    q = (0, 1, 1)
    fs = [compose((1, 2, 3), q), compose((1, 1), (0, 0, 1, 1))]
    accept = verifier(fs)
    good = tuple(encode(to_prefix(q)))
    assert accept(0, good) and not accept(1, good)
    assert not accept(0, tuple(encode("* P 1 a")))  # Q = a is trivial
    assert not accept(0, tuple(encode("+ P")))  # does not parse
    assert check_answer(fs[0], good) and not check_answer(fs[0], ())


def test_search_options_are_checked():
    model = random_model()
    with pytest.raises(ValueError, match="acceptance check"):
        decode(model, PROMPTS, DecodeOptions(stop_on_verified=True))
    with pytest.raises(ValueError, match="acceptance check"):
        decode(model, PROMPTS, DecodeOptions(decoder="cascade"))
    for bad, msg in (("greedy > wide 3", "write greedy"), ("beam 0", "1 to 64"), ("", "at least one"),
                     ("sample 99", "1 to 64"), (" > ".join(["greedy"] * 7), "at most")):
        with pytest.raises(ValueError, match=msg):
            DecodeOptions(decoder="cascade", cascade=bad)
    with pytest.raises(ValueError, match="sample decoder"):
        DecodeOptions(decoder="beam", samples=4)
    assert parse_stages("greedy>beam10 -> Sample 8") == (("greedy", 1), ("beam", 10), ("sample", 8))
    assert options(decoder="beam", samples=8).samples == 1 and options(decoder="sample", samples=8).samples == 8
    stages = options(decoder="cascade", cascade="greedy > sample 4 > beam 16", cache="concat").stages()
    assert [(s.decoder, s.width, s.samples, s.cache) for s in stages] == [
        ("greedy", 1, 1, "concat"), ("sample", 1, 4, "concat"), ("beam", 16, 1, "concat")]
