"""Memory: heavy jobs must not leave the process bigger. The no-cache path computes in bounded chunks, freed
memory goes back to the system on request, and the peak of one job can be measured."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import engine
from engine.decoding import session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim and /proc are Linux's")
def test_release_memory_gives_freed_heap_back_to_the_system():
    """glibc keeps freed small and medium blocks in its arenas, so RSS stays at the peak of the last heavy
    job: release_memory() must hand them back. Run in a fresh process whose allocator is set up so that the
    freed memory is kept (as it is in a long-running server), else the test could not tell the difference."""
    script = textwrap.dedent("""
        import ctypes, torch, engine
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)   # M_MMAP_THRESHOLD: 1 MB tensors come from the heap
        libc.mallopt(-1, 1 << 30)    # M_TRIM_THRESHOLD: free() alone never returns the heap's top
        mb = lambda: engine.rss_bytes() / 2**20
        blocks = [torch.ones(1 << 20, dtype=torch.uint8) for _ in range(300)]  # 300 MB, touched
        grown = mb()
        del blocks
        kept = mb()
        assert engine.release_memory()
        print(grown, kept, mb())
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    grown, kept, released = map(float, out.stdout.split())
    assert kept > grown - 50  # glibc kept the freed 300 MB ...
    assert released < kept - 250  # ... until release_memory() returned it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")
def test_peak_rss_covers_a_window():
    """The profiler reports one job's peak: the window must reset and must catch a short-lived allocation."""
    assert engine.reset_peak_rss()
    before = engine.rss_bytes()
    big = torch.ones(200 << 20, dtype=torch.uint8)  # 200 MB, touched
    del big
    engine.release_memory()
    assert engine.peak_rss_bytes() >= before + (180 << 20)
    assert engine.reset_peak_rss()
    assert engine.peak_rss_bytes() < before + (100 << 20)


def test_no_cache_decoding_runs_rows_in_bounded_chunks(monkeypatch):
    """Without a cache every step recomputes rows x H x S x S attention scores: a wide beam on a long prompt
    allocated gigabytes. Rows now go through the model in chunks under RECOMPUTE_BUDGET elements, with the
    same tokens and scores as one big forward and as a cached decode."""
    torch.manual_seed(0)
    model = engine.GPT(engine.PRESETS["tiny"]).eval()
    prompts = [[16, 22, 23, 9, 16, 5, 9], [17, 21, 9]]
    opts = engine.preset("V1", width=6, max_new=8)
    whole = engine.run_to_completion(engine.decode(model, prompts, opts))
    cached = engine.run_to_completion(engine.decode(model, prompts, engine.preset("V3", width=6, max_new=8)))
    sizes = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx, **kw: sizes.append(idx.shape) or forward(idx, **kw))
    cfg = model.config
    monkeypatch.setattr(session, "RECOMPUTE_BUDGET", 4 * 16 * (cfg.n_head * 16 + 4 * cfg.n_embd))
    chunked = engine.run_to_completion(engine.decode(model, prompts, opts))
    for a, b, c in zip(whole.hypotheses, chunked.hypotheses, cached.hypotheses):
        assert [h.ids for h in a] == [h.ids for h in b] == [h.ids for h in c]
        assert [h.score for h in b] == pytest.approx([h.score for h in a], abs=1e-5)
    for rows, S in sizes:  # every forward kept rows x S x (H S + 4C) within the budget (or was one row)
        assert rows == 1 or rows * S * (cfg.n_head * S + 4 * cfg.n_embd) <= session.RECOMPUTE_BUDGET
    assert max(rows for rows, _ in sizes) < 12  # 2 problems x 6 beams never went through at once


def test_profile_reports_the_process_peak(tmp_path):
    torch.manual_seed(0)
    model = engine.GPT(engine.PRESETS["tiny"]).eval()
    summary = engine.profile_run(model, engine.parse_polynomial("a^4 + 2a^2 + 7"),
                                 engine.preset("V1", width=3, max_new=4), out_dir=str(tmp_path))
    assert summary["peak_rss_bytes"] >= 0.9 * summary["rss_before_bytes"] > 0
    assert summary["peak_rss_scope"] in ("decode", "process")
