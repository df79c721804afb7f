"""python -m engine.bench: every suite in smoke mode (seconds) prints a table and a well-formed JSON line."""
import json
import os
import sys

import pytest
import torch

from engine import SUITES, format_table, run_suite
from engine.bench.util import Subject, max_new_for, problems, run_ours
from engine.checkpoint import ban_end, random_model
from engine.bench.__main__ import main
from engine.decoding import preset
from engine.model import GPT, PRESETS
from engine.tokenizer import PAD_ID, SEP_ID, encode

SUMMARY_KEYS = {
    "generation": {"v1_to_v3_min", "fastest_vs_v1_min", "outputs_identical"},
    "beam": {"speedup_vs_nocache_w10", "speedup_vs_seed_way_w10", "seconds_fastest_w10", "accuracy_identical",
             "outputs_identical"},
    "hf": {"speedup_vs_hf_greedy", "speedup_vs_hf_beam10", "outputs_identical"},
    "engines": {"ct2_ratio_greedy_b1", "ct2_ratio_beam10_b1", "ct2_ratio_greedy_b30", "ct2_ratio_beam10_b30",
                "speedup_vs_hf_greedy", "speedup_vs_hf_beam10", "outputs_identical", "bf16_same_best_share",
                "int8_dynamic_same_best_share", "compile_speedup_greedy_b1", "compile_speedup_beam10_b1",
                "compile_speedup_greedy_b30", "compile_speedup_beam10_b30", "packed_speedup_greedy_b1",
                "packed_speedup_beam10_b1", "packed_speedup_greedy_b30", "packed_speedup_beam10_b30",
                "fused_speedup_greedy_b1", "fused_speedup_beam10_b1", "fused_speedup_greedy_b30",
                "fused_speedup_beam10_b30", "tiled_speedup_greedy_b1", "tiled_speedup_beam10_b1",
                "tiled_speedup_greedy_b30", "tiled_speedup_beam10_b30", "native_speedup_greedy_b1",
                "native_speedup_beam10_b1", "native_speedup_greedy_b30", "native_speedup_beam10_b30", "fused_step"},
    "sweep": {"min_speedup_best_cache", "outputs_identical"},
    "frontier": {"cascade_time_ratio", "cascade_accuracy_gap", "stop_on_verified_speedup",
                 "stop_on_verified_accuracy_gap", "stop_on_verified_saved_steps", "cascade_time_ratio_one_at_a_time"},
}
FLAGS = {"generation": ("outputs_identical",), "beam": ("accuracy_identical", "outputs_identical"),
         "hf": ("outputs_identical",), "engines": ("outputs_identical", "ctranslate2", "fused_step"),
         "sweep": ("outputs_identical",),
         "frontier": ()}


@pytest.mark.parametrize("suite", SUITES)
def test_suite_smoke_prints_table_then_json(suite, tmp_path, capsys):
    """The CI check of the issue: each suite runs, its last line is the JSON result, the flags hold."""
    assert main([suite, "--smoke", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert lines[0].startswith(f"## {suite} benchmark")
    assert result["suite"] == suite and result["smoke"] is True
    assert {"cpu", "threads", "torch", "device"} <= set(result["machine"])
    assert result["rows"], "a suite without rows measured nothing"
    for row in result["rows"]:
        assert set(result["columns"]) <= set(row), f"row {row} lacks table columns"
    assert SUMMARY_KEYS[suite] <= set(result["summary"])
    for flag in FLAGS[suite]:
        assert result["summary"][flag] is True, f"{suite}: {flag} is false"
    with open(os.path.join(tmp_path, f"{suite}.json"), encoding="utf-8") as fh:
        saved = json.load(fh)
    assert saved["rows"] == result["rows"] and result["json"] == os.path.join(str(tmp_path), f"{suite}.json")
    # JSON and the table rendered from it; no charts: demo/figures.py draws them
    assert sorted(os.listdir(tmp_path)) == [f"{suite}.json", f"{suite}.md"]
    with open(os.path.join(tmp_path, f"{suite}.md"), encoding="utf-8") as fh:
        assert fh.read() == format_table(saved) + "\n"


def test_json_flag_prints_only_the_json_line(tmp_path, capsys):
    assert main(["sweep", "--smoke", "--json", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["suite"] == "sweep"


def test_run_suite_reports_progress_and_can_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    result = run_suite("sweep", smoke=True, out_dir=None, progress=lambda f, msg: seen.append((f, msg)))
    assert seen and seen[-1][0] == 1.0 and all(0.0 <= f <= 1.0 for f, _ in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
    assert "html" not in result and "json" not in result and os.listdir(tmp_path) == []


def test_run_suite_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown suite"):
        run_suite("nope", smoke=True)
    with pytest.raises(ValueError, match="runs"):
        run_suite("generation", smoke=True, runs=0)
    with pytest.raises(ValueError, match="model preset"):
        run_suite("generation", preset="huge", out_dir=None)


def test_cli_rejects_checkpoint_and_preset_together(capsys):
    with pytest.raises(SystemExit) as e:
        main(["beam", "--checkpoint", "x", "--preset", "tiny"])
    assert e.value.code == 2


def test_ban_end_forces_full_length_answers():
    """Random weights must do equal work in every configuration: no END (and no PAD) is ever chosen."""
    model = random_model("tiny", seed=3)
    prompts = [encode(p.prompt) + [SEP_ID] for p in problems((2, 2), 2)]
    for opts in (preset("fastest", decoder="greedy", width=1, max_new=12), preset("V1", decoder="beam", width=4,
                                                                                 max_new=12)):
        result = run_ours(model, prompts, opts)
        for group in result.hypotheses:
            for h in group:
                assert len(h.ids) == 12 and not h.finished
                assert SEP_ID not in h.ids and PAD_ID not in h.ids
    torch.manual_seed(0)
    trained_like = GPT(PRESETS["tiny"])
    with torch.no_grad():
        trained_like.ln_f.weight.mul_(1.5)
    with pytest.raises(ValueError):
        ban_end(trained_like)


def test_max_new_follows_the_weights():
    model = random_model("tiny")
    batch = problems((2, 2), 3)
    longest = max(len(encode(p.answer)) for p in batch) + 1
    dev = torch.device("cpu")
    assert max_new_for(Subject(model, "random", False, dev), batch) == longest
    assert max_new_for(Subject(model, "random", False, dev, answer_cap=4), batch) == min(4, longest)
    assert max_new_for(Subject(model, "trained", True, dev), batch) == 40


def test_format_table_shows_machine_settings_rows_and_summary():
    result = {"suite": "beam", "machine": {"cpu": "Test CPU", "threads": 2, "torch": "2.x", "device": "cpu"},
              "model": "random weights", "settings": {"problems": 30}, "definitions": ["no cache: recompute"],
              "columns": ["width", "decoder", "seconds"],
              "rows": [{"width": 10, "decoder": "fastest", "seconds": 1.23456}],
              "summary": {"accuracy_identical": False, "speedup_vs_nocache_w10": 5.5}}
    text = format_table(result)
    assert "Test CPU, 2 threads" in text and "problems=30" in text and "no cache: recompute" in text
    assert "| width | decoder | seconds |" in text and "fastest" in text and "1.23" in text
    assert "accuracy_identical: NO" in text and "speedup_vs_nocache_w10: 5.50" in text


def test_agreement_accepts_only_float_ties():
    """Different answers count as the same result only when their scores tie to float precision."""
    from engine.bench.util import SCORE_TOL, agreement
    from engine.decoding import Hypothesis
    a = [Hypothesis((1, 2), -1.0, True), Hypothesis((3,), -2.0, True)]
    assert agreement(a, list(a)) == (True, 0)
    tie = [a[0], Hypothesis((4,), -2.0 + SCORE_TOL / 2, True)]
    assert agreement(a, tie) == (True, 1)
    worse = [a[0], Hypothesis((4,), -2.5, True)]
    assert agreement(a, worse) == (False, 0)
    assert agreement(a, a[:1]) == (False, 0)
    assert agreement([None], [a[0]]) == (False, 0)


def test_report_renders_readme_tables_from_the_json(tmp_path, capsys):
    """Guards against hand-pasted tables: a block's body is exactly format_table() of its JSON file, and
    --check fails whenever the markdown differs from that."""
    from engine.bench.report import main as report
    from engine.bench.runner import format_table, write_result
    result = {"suite": "beam", "machine": {"cpu": "Test CPU", "threads": 1, "torch": "2.x", "device": "cpu"},
              "model": "m", "settings": {"runs": 1}, "columns": ["width", "seconds"],
              "rows": [{"width": 5, "seconds": 1.5}], "summary": {"outputs_identical": True}}
    write_result(result, str(tmp_path / "docs"))
    assert (tmp_path / "docs" / "beam.md").read_text(encoding="utf-8") == format_table(result) + "\n"
    readme = tmp_path / "README.md"
    pasted = "intro\n<!-- bench: docs/beam.json -->\n| pasted | 9.99 |\n<!-- /bench -->\nend\n"
    readme.write_text(pasted, encoding="utf-8")
    assert report(["--readme", str(readme), "--check"]) == 1
    assert report(["--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text == f"intro\n<!-- bench: docs/beam.json -->\n{format_table(result, title=False)}\n<!-- /bench -->\nend\n"
    assert report(["--readme", str(readme), "--check"]) == 0
    (tmp_path / "docs" / "beam.json").unlink()
    with pytest.raises(SystemExit):
        report(["--readme", str(readme)])
    capsys.readouterr()


def test_the_readme_benchmark_tables_come_from_committed_results(capsys):
    """Every benchmark table in README.md is rendered from a JSON result under docs/bench/ (in git)."""
    from engine.bench.report import BLOCK, main as report
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    readme = os.path.join(root, "README.md")
    with open(readme, encoding="utf-8") as fh:
        paths = [m["path"] for m in BLOCK.finditer(fh.read())]
    # the frontier runs one JSON per degree pair; its block is checked below
    assert {f"docs/bench/{s}.json" for s in SUITES if s != "frontier"} <= set(paths)
    assert report(["--readme", readme, "--check"]) == 0, capsys.readouterr().out


def test_the_readme_frontier_block_and_charts_come_from_committed_results():
    """The frontier section of README.md and its SVG charts are what docs/render.py makes of the committed
    docs/bench/frontier_<pair>/frontier.json files (never pasted, never stale)."""
    import glob
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("render", os.path.join(root, "docs", "render.py"))
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    paths = sorted(glob.glob(render.FRONTIER_GLOB))
    assert paths, "no committed frontier results"
    block, svgs = render.frontier_block(paths)
    with open(os.path.join(root, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    assert f"<!-- frontier:start -->\n{block}\n<!-- frontier:end -->" in text
    for path, body in svgs.items():
        with open(path, encoding="utf-8") as fh:
            assert fh.read() == body, path
        assert os.path.relpath(path, root) in block


def test_frontier_on_the_shipped_model_verifies_and_the_search_rules_hold():
    """The frontier suite on the trained weights (smoke grid, three (2,2) problems): verification really
    happens, a cascade never verifies less than its widest stage alone, stopping at the first verified answer
    never changes accuracy nor takes more steps, and the Pareto flags are consistent."""
    from engine.checkpoint import DEFAULT_CHECKPOINT
    result = run_suite("frontier", smoke=True, checkpoint=DEFAULT_CHECKPOINT, out_dir=None)
    rows = {(r["mode"], r["strategy"]): r for r in result["rows"]}
    assert result["model"].startswith("checkpoint") and result["settings"]["pairs"] == ["2_2"]
    assert max(r["accuracy"] for r in result["rows"]) > 0, "the shipped model verifies some (2,2) problems"
    for mode in ("batched", "one at a time"):
        assert rows[mode, "cascade greedy>2>4"]["accuracy"] >= rows[mode, "beam 4"]["accuracy"]
        assert rows[mode, "cascade greedy>2>4"]["accuracy"] >= rows[mode, "greedy"]["accuracy"]
        for w in (2, 4):
            plain, stop = rows[mode, f"beam {w}"], rows[mode, f"beam {w} stop"]
            assert stop["accuracy"] == plain["accuracy"]
            assert stop["steps_per_problem"] <= plain["steps_per_problem"]
        front = [r for r in result["rows"] if r["mode"] == mode and r["pareto"]]
        best = max(r["accuracy"] for r in result["rows"] if r["mode"] == mode)
        assert front and max(r["accuracy"] for r in front) == best
        # each call's fastest run, summed, can only be at most the mean of the whole passes
        assert all(r["ms_per_problem"] <= r["mean_ms_per_problem"] + 0.01 for r in result["rows"] if r["mode"] == mode)
    summary = result["summary"]
    assert summary["stop_never_more_steps"] is True
    assert summary["stop_on_verified_accuracy_gap"] == {"2_2": 0.0}
    assert summary["cascade_accuracy_gap"]["2_2"] <= 0
    assert 0 <= summary["stop_on_verified_saved_steps"]["2_2"] < 1
    # answer checks are timed inside each call: every strategy checks at least one answer, within its own time
    assert all(0 < r["check_ms_per_problem"] < r["ms_per_problem"] for r in result["rows"])
    assert 0 < summary["stop_check_share_max"] < 1
    spread = summary["run_to_run_spread"]["2_2"]
    assert spread is None if result["settings"]["runs"] < 2 else spread >= 0


def test_frontier_flags(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["frontier", "--smoke", "--pairs", "2_5"])
    assert "bad degree pair" in capsys.readouterr().err
    with pytest.raises(ValueError, match="frontier suite only"):
        run_suite("beam", smoke=True, pairs=[(2, 2)], out_dir=None)
    with pytest.raises(ValueError, match="problems"):
        run_suite("frontier", smoke=True, problems=0, out_dir=None)


def _engine_rows(result: dict, engine: str) -> list[dict]:
    return [r for r in result["rows"] if r["engine"] == engine]


def test_engines_smoke_has_every_engine_with_identical_best_answers(tmp_path):
    """Ours, transformers and CTranslate2 each run greedy and beam 10, one at a time and batched, on the same
    weights, and their best answers agree (the identity flags are computed, not assumed: see the next test)."""
    pytest.importorskip("ctranslate2")
    result = run_suite("engines", smoke=True, out_dir=None)
    for engine in ("ours", "ours modules", "ours aten", "ours gather", "ours compiled", "transformers", "ctranslate2"):
        rows = _engine_rows(result, engine)
        assert {(r["mode"], r["batch"]) for r in rows} == {("greedy", 1), ("greedy", 3), ("beam 10", 1), ("beam 10", 3)}
        assert all(r["exact"] and r["identical_best"] and r["same_best_share"] == 1.0 and r["ms_per_problem"] > 0
                   for r in rows)
    for engine in ("ours bf16", "ours int8-dynamic"):  # may change outputs: measured, flagged, not claimed
        rows = _engine_rows(result, engine)
        assert len(rows) == 4 and not any(r["exact"] for r in rows)
        assert all(0.0 <= r["same_best_share"] <= 1.0 and 0.0 <= r["verified_share"] <= 1.0 for r in rows)
    ours, ct2 = _engine_rows(result, "ours")[0], _engine_rows(result, "ctranslate2")[0]
    ratio = ours["ms_per_problem"] / ct2["ms_per_problem"]  # from the rounded row times: equal within rounding
    assert result["summary"]["ct2_ratio_greedy_b1"] == pytest.approx(ratio, rel=0.02, abs=0.02)


def test_engines_flags_a_ctranslate2_that_answers_differently(monkeypatch):
    """A CTranslate2 run whose answers differ must turn identical_best and outputs_identical false."""
    pytest.importorskip("ctranslate2")
    from engine.bench import engines
    from engine.decoding import Decoded, Hypothesis

    real = engines.ct2_decode

    def wrong(generator, vocab, prompts, opts):
        out = real(generator, vocab, prompts, opts)
        return Decoded(tuple(tuple(Hypothesis(h.ids + (SEP_ID - 1,), h.score - 5.0, h.finished) for h in g)
                             for g in out.hypotheses), (), 0.0, out.total_ms)

    monkeypatch.setattr(engines, "ct2_decode", wrong)
    result = run_suite("engines", smoke=True, out_dir=None)
    assert not any(r["identical_best"] for r in _engine_rows(result, "ctranslate2"))
    assert result["summary"]["outputs_identical"] is False


def test_engines_without_ctranslate2_is_a_note_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 now fails as if not installed
    monkeypatch.setitem(sys.modules, "ctranslate2.converters", None)
    result = run_suite("engines", smoke=True, out_dir=None)
    assert not _engine_rows(result, "ctranslate2") and _engine_rows(result, "transformers")
    assert result["summary"]["ct2_ratio_greedy_b1"] is None and result["summary"]["ctranslate2"] is False
    assert result["summary"]["outputs_identical"] is True
    assert any("pip install ctranslate2" in n for n in result["notes"])
    assert all(r["vs_ct2"] is None for r in result["rows"])
