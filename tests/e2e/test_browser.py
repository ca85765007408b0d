"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run app.py`
with its embedded worker: queue the digits preset, watch it finish, open the layer chart (bands are
lines within 0..100), share it, open the share link in a fresh browser context, click a chart point
through to that job's curves, open the studies list, /new, the Similarity page of the study it ran
and every other page. Screenshots of each page go to var/screenshots/."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "var" / "screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _need_browser():
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test: {CHROMIUM} is missing (.ci/run installs Debian's chromium)")
    pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    _need_browser()
    port = _free_port()
    env = {**os.environ, "TRANSFERLAB_VAR": str(tmp_path / "var"), "TRANSFERLAB_EMBEDDED_WORKER": "1"}
    env.pop("TRANSFERLAB_DATABASE_URL", None)
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
    yield base
    proc.terminate()  # the app stops its embedded worker on exit
    proc.wait(timeout=30)


def _chart_values(page) -> list:
    page.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=60_000)
    return page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => [t.name, t.y])")


def test_queue_watch_chart_share(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # a fresh profile each launch
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        # The server's first session opens a page's address, as a shared link does after a restart: it
        # gets app.py's frame (navigation titles, sidebar), not a legacy pages/ listing without it.
        page.goto(f"{server}/jobs")
        expect(page.get_by_text("What transfers in transfer learning, from which layers, and when.")).to_be_visible(
            timeout=60_000)
        expect(page.get_by_role("link", name="Layer transfer")).to_be_visible()
        page.goto(server)  # the default page, New study
        seeds = page.get_by_label("Seeds (one class split each)")
        seeds.fill("0")
        seeds.press("Enter")
        page.get_by_text("90 jobs").first.wait_for(timeout=60_000)  # 27 networks, their sharpness, 36 CKA
        page.screenshot(path=SHOTS / "new-study.png", full_page=True)
        page.get_by_role("button", name="Queue study").click()
        page.get_by_role("link", name="Watch study #1 on the Jobs page").click()  # same tab, same session
        page.wait_for_url("**/jobs?study=1*", timeout=60_000)
        page.get_by_text("90 of 90 succeeded").wait_for(timeout=600_000)
        page.screenshot(path=SHOTS / "jobs.png", full_page=True)

        page.goto(f"{server}/layers?study=1")
        live = _chart_values(page)
        assert {"baseB", "AnB", "AnB+", "BnB", "BnB+", "random"} <= {name for name, _ in live}
        bands = page.evaluate("() => document.querySelector('.js-plotly-plot').data"
                              ".filter(t => t.fill == 'toself').map(t => [t.mode, Array.from(t.y)])")
        assert bands and all(mode == "lines" and all(0 <= y <= 100 for y in ys) for mode, ys in bands)
        page.get_by_role("button", name="Share this view").click()
        link = page.locator("code").filter(has_text="share=").first.inner_text().strip()
        assert link.startswith(server) and "share=" in link
        page.screenshot(path=SHOTS / "layers.png", full_page=True)

        fresh = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        fresh.goto(link)
        fresh.get_by_text("Snapshot").first.wait_for(timeout=60_000)
        assert _chart_values(fresh) == live
        fresh.screenshot(path=SHOTS / "shared.png", full_page=True)

        # A click on a point of the layer chart (one seed: the point is one network) opens that job.
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        point = page.evaluate("""() => {
            const gd = document.querySelector('.js-plotly-plot'), fl = gd._fullLayout;
            const trace = gd._fullData.find(t => t.name == 'AnB' && t.mode.includes('markers'));
            const box = gd.getBoundingClientRect(), i = trace.x.length - 1;  // deepest n: AnB stands apart
            return [box.left + fl._size.l + fl.xaxis.l2p(trace.x[i]), box.top + fl._size.t + fl.yaxis.l2p(trace.y[i]),
                    trace.x[i]];
        }""")
        page.mouse.click(point[0], point[1])
        page.wait_for_url("**/job?job=*", timeout=60_000)
        page.get_by_text("Training curves").first.wait_for(timeout=60_000)
        page.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=60_000)
        page.get_by_text(f"AnB n={point[2]}, seed 0").first.wait_for(timeout=10_000)
        page.screenshot(path=SHOTS / "job.png", full_page=True)

        page.goto(f"{server}/studies")
        page.get_by_role("button", name="Rename").wait_for(timeout=60_000)
        expect(page.get_by_label("Name", exact=True)).to_have_value("yosinski-digits", timeout=30_000)
        page.wait_for_selector("[data-testid=stDataFrame] canvas", timeout=30_000)
        page.wait_for_timeout(1000)
        assert page.locator("[data-testid=stException]").count() == 0
        page.screenshot(path=SHOTS / "studies.png", full_page=True)

        page.goto(f"{server}/new")  # the default page's own address
        page.get_by_role("button", name="Queue study").wait_for(timeout=60_000)
        assert page.get_by_text("Page not found").count() == 0

        page.goto(f"{server}/similarity?study=1")
        page.wait_for_selector(".js-plotly-plot .heatmaplayer .hm", timeout=60_000)
        heatmaps = page.evaluate("() => document.querySelector('.js-plotly-plot').data.filter(t => t.type == 'heatmap')"
                                 ".map(t => t.x)")
        assert heatmaps and heatmaps[0][0] == "conv1"
        assert page.locator("[data-testid=stException]").count() == 0
        page.screenshot(path=SHOTS / "similarity.png", full_page=True)

        for name in ("sharpness", "explorer", "study", "curves", "compare", "landscape", "findings"):
            page.goto(f"{server}/{name}?study=1&studies=1")
            page.wait_for_timeout(3000)
            assert page.locator("[data-testid=stException]").count() == 0
            page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
        browser.close()
