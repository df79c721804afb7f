"""Load: 16 gradio_client users stream beam searches on different polynomials from one running app while
another records a profile. Every user must see its search stream step by step and get a verified answer
(and `best`) for its own polynomial, nothing may fail, and the recording must be a complete, readable trace.
Part of the reliability suite (tests/test_reliability.py has the rest)."""
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from app_server import served_app

import engine
from demo.formatting import ascii_poly

USERS = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_app(tmp_path_factory.mktemp("load"), USERS) as served:
        yield served


def beam_search(url: str, f) -> tuple[int, dict]:
    """(streamed updates seen, the final result JSON) of one streaming client."""
    client = Client(url, verbose=False)
    job = client.submit(ascii_poly(f), width=10, api_name="/decompose")
    updates = sum(1 for _ in job)  # the live beams of every step, as they come
    return updates, job.result()[-1]


def record_profile(url: str) -> str:
    client = Client(url, verbose=False)
    out = client.predict("a^4 + 2a^3 + 3a^2 + 2a + 5", name="under-load", api_name="/profile")
    return out[0]


def test_concurrent_beam_searches_and_a_profile(server):
    app, profile_dir, problems = server.app, server.profile_dir, server.problems
    url = app.url
    with ThreadPoolExecutor(USERS + 1) as pool:
        searches = [pool.submit(beam_search, url, f) for f, _ in problems]
        recording = pool.submit(record_profile, url)
        results = [s.result(timeout=600) for s in searches]
        summary_md = recording.result(timeout=600)
    for (f, _), (updates, result) in zip(problems, results):
        assert result["f"] == ascii_poly(f), "a user received someone else's result"
        assert updates >= result["steps"]  # streamed: at least one update per decode step
        best = next(a for a in result["answers"] if a["verified"])
        assert result["best"] == best  # the first verified answer, whatever the model's order
        q = engine.parse_polynomial(best["q"])
        assert engine.verify(f, q).ok  # checked here again, independently of the app
    assert "under-load" in summary_md
    runs = engine.list_runs(profile_dir)
    assert len(runs) == 1 and runs[0]["name"].endswith("under-load")
    with open(runs[0]["trace"], encoding="utf-8") as fh:
        trace = json.load(fh)  # a complete JSON document: nothing interleaved or cut
    names = [e.get("name") for e in trace["traceEvents"]]
    assert {"prefill", "decode_step", "beam_select"} <= set(names)
    assert names.count("prefill") == 1  # one decode recorded: no other user's work leaked into the trace
    assert os.path.exists(os.path.join(runs[0]["path"], "summary.json"))
    assert app.proc.poll() is None and "Traceback" not in app.log()  # the server took it all in stride
