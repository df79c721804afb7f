"""The app in a real browser: `python app.py` in a subprocess with the shipped (trained) weights, driven
through Debian's Chromium with Playwright. The browser has no network beyond this machine (every request to
another host is aborted), so everything shown must work offline. The tests share one server and one page and
run in order: decompose -> bad input -> compare -> profile -> TensorBoard -> benchmark. Each tab is
screenshotted into test-artifacts/screenshots/ (and into docs/screenshots/ for the README with
UPDATE_SCREENSHOTS=1)."""
import json
import time
import urllib.parse
import urllib.request

import pytest

from app_server import chromium, screenshot, served_app

import engine
from demo.formatting import ascii_poly

TIMEOUT_MS = 120_000  # the CPU is shared with training and other tests; be patient, never flaky


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_app(tmp_path_factory.mktemp("browser"), 2) as served:  # (2,2) problems it verifies at width 10
        yield served


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")  # what the browser may still reach


def offline(ctx) -> list[str]:
    """Abort every request that leaves this machine (as on a cluster without internet); returns the list the
    aborted URLs are appended to."""
    blocked: list[str] = []

    def route(r):
        if urllib.parse.urlsplit(r.request.url).hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort("internetdisconnected")

    ctx.route("**/*", route)
    return blocked


@pytest.fixture(scope="module")
def page(server):
    with chromium() as ctx:
        offline(ctx)
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_selector("#decompose-run")
        page.get_by_text("parameters").first.wait_for()  # the model line is filled in by the page's load event
        yield page


def wait_text(page, selector: str, text: str) -> str:
    """Wait until the element's rendered text contains `text`; return that text."""
    page.wait_for_function("([sel, text]) => document.querySelector(sel)?.innerText.includes(text)",
                           arg=[selector, text])
    return page.inner_text(selector)


def wait_svg_text(page, selector: str, text: str) -> str:
    """wait_text for SVG elements (plotly's hover labels), which have text content but no innerText."""
    page.wait_for_function("([sel, text]) => document.querySelector(sel)?.textContent.includes(text)",
                           arg=[selector, text])
    return page.locator(selector).text_content()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def decompose(page, text: str) -> None:
    page.fill("#decompose-input textarea", text)
    page.click("#decompose-run")


def test_beam_search_shows_a_verified_answer_and_the_beam_tree(page, server):
    f, expected = server.problems[0]
    decompose(page, ascii_poly(f))
    wait_text(page, "#decompose-input-note", f"deg f = {engine.degree(f)}")  # what the model does with such inputs
    wait_text(page, "#decompose-status", ascii_poly(f))
    assert "✓" in wait_text(page, "#decompose-answers", "Verified")
    assert page.inner_text("#decompose-answers").startswith("✓ Model verified Q(a)")  # the combined verdict
    tree = page.locator("#beam-tree")
    tree.locator(".scatterlayer .point").first.wait_for()  # plotly drew the token nodes
    assert tree.locator(".scatterlayer .point").count() > 10  # width 10: many beams
    assert "Beam tree" in tree.inner_text() and "best answer's path" in tree.inner_text()  # the legend
    screenshot(page, "decompose")


def test_the_beam_tree_shows_end_and_the_alternatives_that_lost_on_hover(page):
    """The END token is labelled END (not ⁇ or ??), and hovering a node tells its probability and the top
    tokens that no beam took; the table after the search marks the best answer."""
    tree = page.locator("#beam-tree")
    ends = tree.locator(".scatterlayer .trace").filter(has=page.locator(".textpoint text", has_text="END"))
    ends.first.wait_for()
    assert "⁇" not in tree.locator(".scatterlayer").text_content()
    point = ends.first.locator(".point").first
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = wait_svg_text(page, "#beam-tree .hoverlayer", "top alternatives that lost")
    assert "token END: p = " in hover and "score " in hover, hover
    assert "★ best answer" in page.inner_text("#decompose-beams")
    screenshot(page, "beam-tree-hover", "#beam-tree")


def test_garbage_shows_an_error_clears_old_answers_and_the_page_keeps_working(page, server):
    f, _ = server.problems[1]
    decompose(page, ascii_poly(f))
    wait_text(page, "#decompose-answers", "Verified")
    decompose(page, "a^2 +* 3")
    toast = page.locator(".toast-body").filter(has_text="column 6")
    toast.first.wait_for()
    text = toast.first.inner_text()
    assert "unexpected '*' at column 6" in text  # the parser's message, pointing at the column
    wait_text(page, "#decompose-status", "Not searched")
    assert "Verified" not in page.inner_text("#decompose-answers")  # the previous answers are gone
    assert page.locator("#decompose-beams tbody tr").filter(has_text="finished").count() == 0
    screenshot(page, "error")
    page.locator(".toast-close").first.click()  # later screenshots must not carry this toast
    toast.first.wait_for(state="detached")
    assert page.locator(".toast-body").count() == 0
    decompose(page, ascii_poly(f))  # a valid run on the same page afterwards
    wait_text(page, "#decompose-status", ascii_poly(f))
    assert "✓" in wait_text(page, "#decompose-answers", "Verified")


def test_cascade_search_marks_where_it_stopped(page, server):
    """The cascade decoder with "stop at the first verified answer": the status names the stage that answered
    and the savings against the widest stage alone, and the beam tree marks the stop."""
    page.locator("#decompose-decoder label", has_text="cascade").click()
    page.locator("#decompose-cascade").wait_for(state="visible")
    page.locator("#decompose-stop-verified input[type=checkbox]").check()
    f, _ = server.problems[0]
    decompose(page, ascii_poly(f))
    status = wait_text(page, "#decompose-status", "Stopped at step")
    assert "a verified answer was accepted" in status and "The full search (beam 64)" in status
    assert "answered by" in status
    assert "stopped at step" in wait_text(page, "#beam-tree", "verified answer")
    assert "✓" in wait_text(page, "#decompose-answers", "Verified")
    screenshot(page, "cascade")


def test_compare_shows_a_verdict(page):
    open_tab(page, "Compare")
    runs = page.locator("#compare-runs input[type=number]")
    runs.fill("1")
    runs.press("Enter")
    page.get_by_label("Profile the phases").uncheck()  # the profiled split is covered by test_demo; save time
    page.click("#compare-run")
    verdict = wait_text(page, "#compare-verdict", "Outputs ")
    assert "Outputs identical" in verdict, verdict  # the default rows differ in speed only
    page.locator("#compare-latency .trace.bars").first.wait_for()
    assert "1.00x" in wait_text(page, "#compare-table", "fastest")
    screenshot(page, "compare")


def test_profile_is_recorded_and_its_trace_view_renders_offline(page, server):
    """The in-app trace view draws the recorded phases and steps with no network (plotly comes with the app),
    and the downloaded trace is named after the run."""
    open_tab(page, "Profile")
    page.fill("#profile-name textarea, #profile-name input", "browser-run")
    page.click("#profile-run")
    wait_text(page, "#profile-runs", "browser-run")
    page.locator("#profile-phases .trace.bars").first.wait_for()
    runs = engine.list_runs(server.profile_dir)
    assert runs and runs[0]["name"].endswith("browser-run") and runs[0]["trace"]
    view = page.locator("#profile-trace")
    view.locator(".trace.bars").first.wait_for()
    lanes = view.locator(".ytick text").all_text_contents()
    assert {"step", "prefill", "decode_step", "beam_select", "operators"} <= set(lanes), lanes
    steps = len(runs[0]["summary"]["steps"])
    assert view.locator(".trace.bars").first.locator(".point").count() == steps  # one bar per decode step
    assert "Trace: " in view.inner_text() and "needs internet" in page.inner_text("#profile-trace-note")
    with page.expect_download() as download:
        page.click("#profile-download")
    assert download.value.suggested_filename == runs[0]["name"] + ".pt.trace.json"
    screenshot(page, "trace-view", "#profile-trace")


def test_tensorboard_starts_from_the_page_and_lists_the_run(page, server):
    page.click("#tb-start")
    link = page.locator("#tb-link a").first
    link.wait_for()
    base = link.get_attribute("href").split("#")[0]
    assert base.startswith("http://127.0.0.1:")
    name = engine.list_runs(server.profile_dir)[0]["name"]
    deadline, runs = time.monotonic() + 90, []
    while time.monotonic() < deadline:  # the plugin scans the log dir every 10 s
        with urllib.request.urlopen(base + "data/plugin/pytorch_profiler/runs", timeout=10) as r:
            runs = json.load(r)["runs"]
        if name in runs:
            break
        time.sleep(2)
    assert name in runs
    # the plugin's Overview counts one step per decode step (ProfilerStep#k ranges), not "Step 0" for all
    steps = len(engine.list_runs(server.profile_dir)[0]["summary"]["steps"])
    api = base + "data/plugin/pytorch_profiler/"
    query = urllib.parse.urlencode({"run": name, "view": "Overview"})
    with urllib.request.urlopen(f"{api}workers?{query}", timeout=30) as r:
        worker = json.load(r)[0]
    with urllib.request.urlopen(f"{api}spans?" + urllib.parse.urlencode({"run": name, "worker": worker}),
                                timeout=30) as r:
        span = json.load(r)[0]
    query = urllib.parse.urlencode({"run": name, "worker": worker, "span": span})
    with urllib.request.urlopen(f"{api}overview?{query}", timeout=60) as r:
        overview = json.load(r)
    assert [row[0] for row in overview["steps"]["rows"]] == [str(k) for k in range(steps)]
    assert steps > 1 and worker == name  # the trace file is <run>.pt.trace.json
    assert "need internet" in page.inner_text("#tb-link")
    page.click("#tb-start")  # a second click reuses the running server
    page.wait_for_timeout(1000)
    assert page.locator("#tb-link a").first.get_attribute("href").split("#")[0] == base
    screenshot(page, "profile")


def test_benchmark_suite_runs_with_a_table_and_chart(page):
    open_tab(page, "Benchmark")
    page.get_by_label("tiny random weights").check()
    page.click("#bench-run")
    table = wait_text(page, "#bench-table", "generation benchmark")
    assert "(smoke)" in table and "random weights, preset tiny" in table
    assert "outputs_identical: yes" in table  # every preset decoded the same tokens
    page.locator("#bench-chart .trace.bars").first.wait_for()
    assert page.locator("#bench-chart .trace.bars").count() == 4  # V1, V2, V3, fastest
    assert page.locator(".toast-body").count() == 0
    screenshot(page, "benchmark")
