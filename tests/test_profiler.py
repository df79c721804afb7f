"""engine.profiler and python -m engine.profile: traces in TensorBoard's layout, phase split, retention, lock."""
import json
import os
import threading
import time

import pytest
import torch
from torch.profiler import record_function

from engine import PHASES, list_runs, profile_run
from engine.checkpoint import random_model
from engine.decoding import preset
from engine.profiler import (_trace_files, phase_times, profile, profiler_steps, prune, read_timeline, read_trace,
                             top_operators)

F = (7, -1, 2, 0, 3)  # 3a^4 + 2a^2 - a + 7


@pytest.fixture(scope="module")
def tiny():
    return random_model("tiny")


def _opts(**kw):
    return preset("fastest", **{"decoder": "beam", "width": 3, "max_new": 6, **kw})


def test_phase_split_charges_nested_ranges_once(tmp_path):
    """Guards against double counting: beam_select inside decode_step must not also count as decode_step,
    and the shares must add up to the whole run."""
    x = torch.randn(64, 64)
    with profile("nested", str(tmp_path)) as rec:
        with record_function("prefill"):
            x @ x
        for _ in range(3):
            with record_function("decode_step"):
                y = x @ x
                with record_function("beam_select"):
                    y.topk(3)
    split = phase_times(read_trace(_trace_files(rec.run_dir)[0]))
    phases = split["phases"]
    assert list(phases) == list(PHASES)
    assert phases["decode_step"]["calls"] == 3 and phases["beam_select"]["calls"] == 3
    assert phases["prefill"]["calls"] == 1 and phases["cache_clone"]["calls"] == 0
    assert sum(v["ms"] for v in phases.values()) == pytest.approx(split["total_ms"], rel=1e-3, abs=0.01)
    assert sum(v["share"] for v in phases.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(v["ms"] >= 0 for v in phases.values())


def test_operator_self_time_subtracts_direct_children_on_the_same_thread():
    """Guards against charging a wrapper op (aten::linear) with the matmul it calls."""
    ev = [{"ph": "X", "cat": "cpu_op", "name": "aten::linear", "ts": 0.0, "dur": 10.0, "tid": 1},
          {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "ts": 1.0, "dur": 7.0, "tid": 1},
          {"ph": "X", "cat": "cpu_op", "name": "aten::copy_", "ts": 2.0, "dur": 2.0, "tid": 1},
          {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "ts": 3.0, "dur": 5.0, "tid": 2},
          {"ph": "X", "cat": "user_annotation", "name": "decode_step", "ts": 0.0, "dur": 20.0, "tid": 1}]
    rows = {r["op"]: r for r in top_operators(ev)}
    assert rows["aten::linear"]["self_ms"] == pytest.approx(0.003)
    assert rows["aten::addmm"]["self_ms"] == pytest.approx(0.010)  # 5 (after its copy_) + 5 on thread 2
    assert rows["aten::addmm"]["calls"] == 2 and rows["aten::copy_"]["self_ms"] == pytest.approx(0.002)
    assert "decode_step" not in rows
    assert [r["op"] for r in top_operators(ev, n=1)] == ["aten::addmm"]


def test_profile_run_writes_tensorboard_layout_and_summary(tiny, tmp_path):
    """The plugin lists a run only when <logdir>/<run>/<worker>.<ts>.pt.trace.json exists."""
    opts = _opts()
    s = profile_run(tiny, F, opts, out_dir=str(tmp_path), name="demo run", keep=5)
    run_dir = s["run_dir"]
    assert os.path.dirname(run_dir) == str(tmp_path) and run_dir.endswith("demo-run")
    traces = [n for n in os.listdir(run_dir) if n.endswith(".pt.trace.json")]
    assert len(traces) == 1 and traces[0] == s["trace"]
    with open(os.path.join(run_dir, traces[0]), encoding="utf-8") as fh:
        trace = json.load(fh)
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"prefill", "decode_step", "beam_select"} <= names
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as fh:
        on_disk = json.load(fh)
    assert on_disk["phases"] == s["phases"]
    assert s["options"]["width"] == 3 and s["options"]["cache"] == opts.cache
    assert set(s["machine"]) >= {"cpu", "threads", "torch", "device"}
    assert len(s["steps"]) == opts.max_new  # random weights never emit END: every step runs
    assert s["phases"]["decode_step"]["calls"] == opts.max_new - 1 == len(s["decode_step_ms"])
    assert s["phases"]["prefill"]["calls"] == 1
    assert s["cache_bytes"] > 0 and s["top_ops"] and s["top_ops"][0]["self_ms"] >= s["top_ops"][-1]["self_ms"]
    assert sum(v["share"] for v in s["phases"].values()) == pytest.approx(1.0, abs=1e-3)


def test_every_decode_step_is_a_profiler_step_and_the_trace_is_named_after_the_run(tiny, tmp_path):
    """Guards against TensorBoard's Overview showing the whole decode as one "Step 0" (no ProfilerStep#k
    ranges), and against downloads named <host>.<nanoseconds>.pt.trace.json that say nothing of the run."""
    for opts in (_opts(), _opts(decoder="greedy", width=1), _opts(decoder="cascade", cascade="greedy > beam 2")):
        s = profile_run(tiny, F, opts, out_dir=str(tmp_path), name=f"steps {opts.decoder}", warmup=False)
        assert s["trace"] == f"{s['name']}.pt.trace.json" and f"_steps-{opts.decoder}" in s["name"]
        events = read_trace(os.path.join(s["run_dir"], s["trace"]))
        marked = profiler_steps(events)
        assert len(marked) == len(s["steps"]) == s["profiler_steps"], opts.decoder
        assert [m["ts_ms"] for m in marked] == sorted(m["ts_ms"] for m in marked)
        decode = [e for e in events if e.get("name") == "decode_step"]
        # each decode step's range lies inside a profiler step's range
        assert all(any(m["ts_ms"] * 1e3 <= e["ts"] and e["ts"] + e["dur"] <= (m["ts_ms"] + m["ms"]) * 1e3 + 1e-3
                       for m in marked) for e in decode)


def test_trace_timeline_has_every_phase_step_and_the_outer_operators(tiny, tmp_path):
    """What the in-app trace view draws: the phase ranges as recorded, one span per profiler step, operators
    only at their outermost level, times from the start of the recording."""
    s = profile_run(tiny, F, _opts(), out_dir=str(tmp_path), warmup=False)
    view = read_timeline(os.path.join(s["run_dir"], s["trace"]))
    lanes = {}
    for span in view["spans"]:
        lanes.setdefault(span["lane"], []).append(span)
    assert len(lanes["step"]) == len(s["steps"]) and lanes["step"][0]["name"] == "step 0"
    assert len(lanes["decode_step"]) == s["phases"]["decode_step"]["calls"]
    assert len(lanes["prefill"]) == 1 and len(lanes["beam_select"]) == s["phases"]["beam_select"]["calls"]
    assert lanes["operators"] and all(sp["start_ms"] >= 0 for sp in view["spans"])
    assert max(sp["start_ms"] + sp["ms"] for sp in view["spans"]) <= view["total_ms"] + 1e-3
    assert view["total_ms"] == pytest.approx(s["total_ms"], abs=1e-3)
    capped = read_timeline(os.path.join(s["run_dir"], s["trace"]), max_ops=3)
    assert sum(sp["lane"] == "operators" for sp in capped["spans"]) == 3
    assert capped["ops_dropped"] == len(lanes["operators"]) - 3


def test_clone_strategy_shows_cache_clone_phase(tiny, tmp_path):
    """The seed's per-candidate cache copies must be visible as their own phase."""
    s = profile_run(tiny, F, _opts(cache="concat", beam_cache="clone", one_at_a_time=True),
                    out_dir=str(tmp_path), warmup=False)
    assert s["phases"]["cache_clone"]["calls"] > 0 and s["phases"]["cache_clone"]["ms"] > 0


def test_list_runs_newest_first_with_summaries(tiny, tmp_path):
    a = profile_run(tiny, F, _opts(), out_dir=str(tmp_path), name="first", warmup=False)
    time.sleep(0.05)
    b = profile_run(tiny, F, _opts(), out_dir=str(tmp_path), name="second", warmup=False)
    runs = list_runs(str(tmp_path))
    assert [r["name"] for r in runs] == [b["name"], a["name"]]
    assert runs[0]["summary"]["phases"] == b["phases"]
    assert runs[0]["trace"].endswith(".pt.trace.json") and os.path.exists(runs[0]["trace"])
    assert list_runs(str(tmp_path / "missing")) == []


def test_retention_keeps_newest_and_spares_other_files(tmp_path):
    """profiles/ stays bounded, but folders that are not recordings (bench results) are never deleted."""
    for k in range(5):
        d = tmp_path / f"run{k}"
        d.mkdir()
        (d / "summary.json").write_text("{}")
        os.utime(d, (1000 + k, 1000 + k))
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "beam.json").write_text("{}")
    removed = prune(str(tmp_path), keep=2)
    assert sorted(os.path.basename(r) for r in removed) == ["run0", "run1", "run2"]
    assert sorted(os.listdir(tmp_path)) == ["bench", "run3", "run4"]
    with pytest.raises(ValueError):
        prune(str(tmp_path), keep=0)


def test_profile_run_prunes_to_keep(tiny, tmp_path):
    for name in ("a", "b", "c"):
        profile_run(tiny, F, _opts(max_new=2), out_dir=str(tmp_path), name=name, keep=2, warmup=False)
    assert [r["name"].split("_", 1)[1] for r in list_runs(str(tmp_path))] == ["c", "b"]


def test_concurrent_recordings_do_not_mix(tiny, tmp_path):
    """torch.profiler is process-global: without the lock the second recording fails or steals events."""
    results, errors = [], []

    def work(width):
        try:
            results.append(profile_run(tiny, F, _opts(width=width, max_new=5), out_dir=str(tmp_path),
                                       name=f"w{width}", warmup=False))
        except Exception as e:  # surfaced below with the thread's error
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in (2, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r["run_dir"] for r in results}) == 2
    for r in results:
        assert r["phases"]["prefill"]["calls"] == 1  # a mixed recording would hold two prefills
        assert r["phases"]["decode_step"]["calls"] == 4


def test_failed_recording_leaves_no_run(tmp_path):
    with pytest.raises(RuntimeError):
        with profile("broken", str(tmp_path)):
            raise RuntimeError("boom")
    assert list_runs(str(tmp_path)) == [] and os.listdir(tmp_path) == []


def test_profile_run_rejects_prompt_beyond_block(tiny, tmp_path):
    big = tuple(range(1, 60))  # a degree-58 polynomial: far more prompt tokens than 300 - max_new
    with pytest.raises(ValueError, match="block size"):
        profile_run(tiny, big, _opts(max_new=40), out_dir=str(tmp_path), warmup=False)
    assert list_runs(str(tmp_path)) == []


def test_cli_records_and_prints_summary(tmp_path, capsys):
    from engine.profile import main
    rc = main(["3a^4 + 2a^2 - a + 7", "--model-preset", "tiny", "--decoder", "greedy", "--max-new", "4",
               "--out", str(tmp_path), "--name", "cli", "--json", "--no-warmup"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["options"]["decoder"] == "greedy" and s["options"]["width"] == 1 and s["options"]["max_new"] == 4
    assert s["polynomial"] == "3a⁴ + 2a² - a + 7"
    assert [r["name"] for r in list_runs(str(tmp_path))] == [s["name"]]


def test_cli_rejects_bad_polynomial(tmp_path, capsys):
    from engine.profile import main
    with pytest.raises(SystemExit) as e:
        main(["3a^^2", "--model-preset", "tiny", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert os.listdir(tmp_path) == []
