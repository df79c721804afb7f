"""Reliability of one shared server, tried as a hostile or careless user would: `python app.py` with the
shipped weights, driven with gradio_client and plain HTTP. Work-size caps, clear messages for bad input,
no uploads, a cancelled benchmark that really stops, disk bounded by the run limit, memory that does not
grow over heavy jobs, and checkpoints crafted to crash or exhaust the loader. Bounded in time: the
heaviest settings used are the smallest that still allocate hundreds of MB."""
import glob
import json
import os
import time

import httpx
import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_server import served_app

import engine
from demo.compare_tab import COLUMNS
from demo.formatting import ascii_poly

KEEP = 3  # --keep-runs for this server: the disk test records KEEP + 5 runs
PATIENCE = 600  # seconds any one request may take on a CPU shared with training and other tests


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_app(tmp_path_factory.mktemp("reliability"), 1, args=("--keep-runs", str(KEEP))) as served:
        yield served


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False, download_files=False)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all threads."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_log(app, text: str, timeout: float) -> float:
    """Seconds until the server's log contains `text` (fails after timeout)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if text in app.log():
            return time.monotonic() - t0
        time.sleep(0.2)
    pytest.fail(f"the server never logged {text!r}:\n{app.log()[-3000:]}")


def raw_call(url: str, api: str, data_json: str) -> str:
    """POST a JSON text (NaN included, which gradio_client refuses to send) to Gradio's REST route and return
    the event stream of the answer."""
    post = httpx.post(f"{url}gradio_api/call/{api}", content=data_json, timeout=PATIENCE,
                      headers={"Content-Type": "application/json"})
    assert post.status_code == 200, post.text
    return httpx.get(f"{url}gradio_api/call/{api}/{post.json()['event_id']}", timeout=PATIENCE).text




def table(rows: list[list]) -> dict:
    """The Compare tab's configurations as an API client sends them."""
    return {"headers": COLUMNS, "data": rows, "metadata": None}


# ---------------------------------------------------------------- caps and messages

@pytest.mark.parametrize("call,message", [
    # the reproducers: 1500 benchmark runs held the queue for hours; 200 compare rows were accepted
    (lambda c: c.predict("generation", True, "tiny random weights", "1500", "0", api_name="/benchmark"),
     "timed runs must be from 1 to 20"),
    (lambda c: c.predict("batch_3_mixed", "", table([["V1", "beam", 10, "", "", "", 40]] * 200), 1,
                         False, api_name="/compare"), "at most 6 configurations"),
    (lambda c: c.predict("batch_3_mixed", "", table([["V1", "beam", 64, "", "", "", 120]] * 2), 1, False,
                         api_name="/compare"), "beam tokens"),
    # values Gradio's own preprocessing used to turn into `error: null` or Python's wording
    (lambda c: c.predict("a^4 + 1", width="wide", api_name="/decompose"), "width must be a whole number"),
    (lambda c: c.predict("a^4 + 1", decoder="sample", seed=2 ** 70, api_name="/decompose"), "seed must be from 0"),
    (lambda c: c.predict("a^4 + 1", max_new=10 ** 6, api_name="/decompose"), "max new tokens must be from 1"),
    (lambda c: c.predict(["a^4"], api_name="/decompose"), "empty input"),
    (lambda c: c.predict("batch_3_mixed", "", "V1", 1, False, api_name="/compare"), "DataframeData"),
])
def test_oversized_and_malformed_requests_get_a_clear_message(server, client, call, message):
    """Every work-size input is capped in the handler, and every bad value is named in one clear line."""
    with pytest.raises(AppError) as err:
        call(client)
    assert message in str(err.value) and "Traceback" not in str(err.value)


@pytest.mark.parametrize("field,value,message", [("width", "NaN", "width must be a whole number"),
                                                 ("max_new", "Infinity", "max new tokens must be a whole number"),
                                                 ("temperature", "NaN", "temperature must be from")])
def test_non_finite_numbers_get_a_clear_message(server, client, field, value, message):
    """NaN reached the decoder as `cannot convert float NaN to integer`."""
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/decompose"]["parameters"]
    data = {p["parameter_name"]: json.dumps(p["parameter_default"]) for p in params}
    data["text"], data[field] = json.dumps("a^4 + 1"), value  # the JSON text as sent: NaN is not valid JSON
    stream = raw_call(server.url, "decompose", '{"data": [' + ", ".join(data.values()) + "]}")
    assert "event: error" in stream and message in stream


def test_uploads_are_refused(server):
    """No component takes files, so the upload route must not store a 20 MB file for anyone to fetch."""
    response = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.bin", b"0" * (20 << 20))},
                          timeout=PATIENCE)
    assert response.status_code == 413
    stored = [p for p in glob.glob(os.path.join(server.cache_dir, "**", "big.bin"), recursive=True)]
    assert stored == []


def test_only_files_the_app_handed_out_are_served(server):
    """The profile folder was an allowed path, so `--profile-dir ~` would have published a home folder."""
    secret = os.path.join(server.profile_dir, "secret.txt")
    with open(secret, "w", encoding="utf-8") as fh:
        fh.write("not for the web")
    try:
        response = httpx.get(f"{server.url}gradio_api/file={secret}", timeout=60)
        assert response.status_code in (403, 404) and "not for the web" not in response.text
    finally:
        os.remove(secret)


# ---------------------------------------------------------------- cancellation

def test_a_cancelled_benchmark_stops_working(server, client):
    """Cancelling once freed the queue while the benchmark kept a core busy for nine more minutes: the work
    itself must stop within seconds, write no result, and leave the server idle and serving."""
    bench_json = os.path.join(server.profile_dir, "bench", "generation.json")
    job = client.submit("generation", False, "this app's checkpoint", "20", "5", api_name="/benchmark")
    wait_for_log(server.app, "generation single_short", PATIENCE)  # it is running
    time.sleep(2)
    job.cancel()
    stopped_after = wait_for_log(server.app, "Benchmark generation cancelled; stopped", 60)
    busy = cpu_seconds(server.app.proc.pid)
    time.sleep(5)
    idle_cpu = cpu_seconds(server.app.proc.pid) - busy
    assert idle_cpu < 1.0, f"the server used {idle_cpu:.1f} CPU s in the 5 s after the benchmark stopped"
    assert not os.path.exists(bench_json)  # the suite never reached its end
    result = client.predict("a^4 + 2a^2 + 7", width=2, max_new=8, api_name="/decompose")[-1]
    assert result["steps"] >= 1  # the model is free for the next user
    print(f"the cancelled benchmark stopped {stopped_after:.1f} s after job.cancel()")


# ---------------------------------------------------------------- disk

def test_recordings_beyond_the_limit_leave_no_trace_anywhere(server, client):
    """26 recordings with a limit of 20 once left 26 trace copies in Gradio's cache, downloadable after their
    run was pruned. With --keep-runs KEEP, KEEP + 5 recordings leave at most KEEP traces on disk anywhere the
    app writes (profile folder and Gradio's cache), and the first one's download link is dead."""
    urls = []
    for n in range(KEEP + 5):
        out = client.predict("a^4 + 2a^2 + 7", name=f"disk-{n}", width=2, max_new=6, api_name="/profile")
        assert out[-1].startswith("✓")  # the progress line: the recording finished
        download = out[-2].get("value", out[-2])  # the download button's file (inside an update), as served
        urls.append(download["url"])
    traces = [p for folder in (server.profile_dir, server.cache_dir)
              for p in glob.glob(os.path.join(folder, "**", "*.pt.trace.json*"), recursive=True)]
    assert len(engine.list_runs(server.profile_dir)) == KEEP
    assert len(traces) <= KEEP, "\n".join(traces)
    assert httpx.get(urls[0], timeout=60).status_code in (403, 404)  # the pruned run's copy is gone
    assert httpx.get(urls[-1], timeout=60).status_code == 200  # the newest still downloads


# ---------------------------------------------------------------- memory

def test_memory_stays_flat_over_ten_heavy_jobs(server, client):
    """Resident memory once went 389 MB -> 1.42 GB over a few heavy jobs and stayed there. Ten in a row
    (V1 comparisons on the mixed batch, width-64 V3 decodes of a degree-16 polynomial: each allocates
    hundreds of MB) may leave the server at most 150 MB above where the first left it, and 300 MB above its
    warmed-up baseline."""
    pid = server.app.proc.pid
    f = ascii_poly(engine.generate(4, 4, 1, seed=5)[0].f)  # degree 16, a prompt of ~250 tokens
    compare = table([["V1", "beam", 10, "", "", "", 6], ["V3", "beam", 10, "", "", "", 6]])
    client.predict("a^4 + 2a^2 + 7", width=2, max_new=4, api_name="/decompose")  # warm-up: lazy imports, first use
    client.predict("single_short", "", table([["V1", "greedy", "", "", "", "", 2]] * 2), 1, False,
                   api_name="/compare")
    baseline = rss_mb(pid)
    after = []
    for n in range(10):
        if n % 2:
            client.predict(f, preset="V3", width=64, max_new=40, api_name="/decompose")
        else:
            client.predict("batch_3_mixed", "", compare, 1, False, api_name="/compare")
        after.append(rss_mb(pid))
    print(f"baseline {baseline:.0f} MB, after each heavy job: {', '.join(f'{m:.0f}' for m in after)} MB")
    assert after[-1] - after[0] <= 150
    assert after[-1] - baseline <= 300


# ---------------------------------------------------------------- crafted checkpoints

@pytest.mark.parametrize("change,message", [
    (lambda info: {**info, "config": {**info["config"], "n_embd": 65536}}, "tok_emb.weight"),
    (lambda info: {**info, "config": {**info["config"], "n_embd": "256"}}, "'n_embd' must be int"),
    (lambda info: [info], "must hold a JSON object"),
])
def test_the_app_refuses_a_crafted_checkpoint_with_one_line(tmp_path, change, message):
    """`python app.py --checkpoint STEM` with a hostile STEM.json: n_embd 65536 once tried to allocate 51.5 GB,
    "256" gave a TypeError traceback, a list an AttributeError. Now: one `error:` line, nothing allocated."""
    import app
    torch.manual_seed(0)
    stem = engine.save_checkpoint(engine.GPT(engine.PRESETS["tiny"]), str(tmp_path / "crafted"))
    with open(stem + ".json", encoding="utf-8") as fh:
        info = json.load(fh)
    with open(stem + ".json", "w", encoding="utf-8") as fh:
        json.dump(change(info), fh)
    with pytest.raises(SystemExit) as exit_:
        app.main(["--checkpoint", stem, "--profile-dir", str(tmp_path / "profiles")])
    text = str(exit_.value.code)
    assert text.startswith("error: cannot load the model: ") and message in text and "\n" not in text
