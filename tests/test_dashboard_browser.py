"""The dashboard in a real browser: start it like `rai-audit dashboard` does, on a free port over
the fixture store, drive Chromium through Runs -> Compare -> Items, check the visible numbers
against the store, and check that a model output carrying HTML/script is shown as literal text
(no <img> element created, no dialog fired). One screenshot per page goes to the test's tmp dir
(and to docs/screenshots/ when RAI_AUDIT_UPDATE_SCREENSHOTS=1).

The Compare page's charts are checked at 1280 and 1920 px: the rendered graphics (vega-embed's
canvas or svg) of the bar chart and the forest plot must not intersect, nor stick out of the page's
main column. Those screenshots go to ``RAI_AUDIT_ARTIFACTS`` when set (CI keeps them), else the
test's tmp dir.

Needs Debian's chromium at /usr/bin/chromium and PyPI playwright (no `playwright install`)."""

from __future__ import annotations

import contextlib

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rai_audit.comparison import Comparison
from rai_audit.store import Store
from tests.dashboard_fixture import EVIL, FINETUNE_ERROR, FIXTURE_POLICY_NAME, build_fixture_store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent


# Streamlit renders after the websocket round trip: wait for elements rather than poll once.
VISIBLE_MS = 30_000


def _requirements() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) for the browser test")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download needed)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_dashboard(db_url: str, log_dir: Path, env: dict[str, str] | None = None):
    """A real dashboard server on a free port over ``db_url`` (its log in ``log_dir``); yields its
    URL once healthy, and stops the whole process group afterwards."""
    port = _free_port()
    log = open(Path(log_dir) / "dashboard.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboards.launch", "--db", db_url, "--port", str(port)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the dashboard did not become healthy within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _requirements()
    fx = build_fixture_store(tmp_path_factory.mktemp("browser") / "fixture.sqlite")
    with running_dashboard(fx.url, tmp_path_factory.mktemp("browser-log")) as url:
        yield fx, url


def _shot(page, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("RAI_AUDIT_UPDATE_SCREENSHOTS") == "1":
        dest = REPO / "docs" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / f"dashboard-{name}.png")
    return path


def _wait_idle(page) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=30_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )
    page.wait_for_timeout(300)


def _artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ["RAI_AUDIT_ARTIFACTS"]) if os.environ.get("RAI_AUDIT_ARTIFACTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


def _intersect(a: dict, b: dict, tol: float = 0.5) -> bool:
    return (a["x"] < b["x"] + b["width"] - tol and b["x"] < a["x"] + a["width"] - tol
            and a["y"] < b["y"] + b["height"] - tol and b["y"] < a["y"] + a["height"] - tol)


# the drawn graphic of each chart (vega-embed renders a canvas, or an svg with the svg renderer)
GRAPHICS = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg.marks'


# the main column's content box (its bounding box less its padding), in viewport coordinates
MAIN_CONTENT_BOX = """() => {
  const e = document.querySelector('[data-testid="stMainBlockContainer"]');
  const r = e.getBoundingClientRect(), cs = getComputedStyle(e);
  const l = parseFloat(cs.paddingLeft), rt = parseFloat(cs.paddingRight);
  return {x: r.x + l, width: r.width - l - rt};
}"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_compare_charts_do_not_overlap(server, tmp_path, width):
    from playwright.sync_api import sync_playwright

    fx, url = server
    out = _artifacts(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # tall enough that the whole page is in the viewport (Streamlit scrolls its main block,
            # not the document, so a full-page screenshot of a short viewport misses the charts)
            page = browser.new_page(viewport={"width": width, "height": 2600})
            page.goto(f"{url}/compare", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Compare").wait_for(timeout=60_000)
            page.get_by_text("Gate:").first.wait_for(timeout=60_000)
            _wait_idle(page)
            for probe in ("toxdemo", "biasdemo"):
                if probe != "toxdemo":
                    page.get_by_text("Toy bias probe").first.click()  # the probe radio
                    page.get_by_role("heading", name="Toy bias probe").wait_for(timeout=60_000)
                    _wait_idle(page)
                page.wait_for_function(
                    f"() => [...document.querySelectorAll({GRAPHICS!r})].filter(e => e.getBoundingClientRect().width > 0).length >= 2",
                    timeout=60_000,
                )
                page.wait_for_timeout(800)  # vega-embed sizes charts to their container after first paint
                shot = out / f"compare-{probe}-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                graphics = page.locator(GRAPHICS)
                boxes = [b for b in (graphics.nth(i).bounding_box() for i in range(graphics.count())) if b and b["width"] > 0]
                assert len(boxes) >= 2, boxes  # the bar chart and the forest plot
                for i in range(len(boxes)):
                    for j in range(i + 1, len(boxes)):
                        assert not _intersect(boxes[i], boxes[j]), (
                            f"{probe} at {width}px: chart {i} {boxes[i]} overlaps chart {j} {boxes[j]}; see {shot}")
                main = page.evaluate(MAIN_CONTENT_BOX)
                for b in boxes:  # nothing drawn past the main column's content (into its margin or off-screen)
                    assert b["x"] >= main["x"] - 1 and b["x"] + b["width"] <= main["x"] + main["width"] + 1, (
                        f"{probe} at {width}px: chart {b} sticks out of the main column {main}; see {shot}")
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            browser.close()


def test_runs_compare_items_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    fx, url = server
    out = _artifacts(tmp_path)
    with Store.open(fx.url) as store:
        comp = Comparison.model_validate(store.get_comparison(fx.comparison_id).result)
        runs = store.list_runs()
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            # Runs
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)
            _wait_idle(page)
            caption = page.get_by_text("runs shown").inner_text()
            assert f"{len(runs)} of {len(runs)} runs shown" in caption
            assert "1 running" in caption and "2 failed" in caption  # a probe run and a finetune run
            for r in runs:  # every run appears (expander labels carry the short id)
                # the runs table also carries the id, in a grid cell that is hidden by design (the grid
                # draws on a canvas), so the wait is for a visible match, whichever renders first
                page.get_by_text(r.run_id[:8], exact=False).filter(visible=True).first.wait_for(timeout=VISIBLE_MS)
            page.get_by_text("complete with errors (1 error)").filter(visible=True).first.wait_for(timeout=VISIBLE_MS)
            # a failure message with markup, through the one Markdown escaper (HTML as entities): shown literally
            page.get_by_text(fx.finetune_failed[:8], exact=False).filter(visible=True).first.click()
            page.get_by_text(f"Failed: {FINETUNE_ERROR}", exact=True).filter(visible=True).first.wait_for(timeout=VISIBLE_MS)
            assert page.locator("main batch").count() == 0
            page.get_by_role("button", name="Refresh").click()  # re-reads the store, page stays whole
            page.wait_for_timeout(300)
            _wait_idle(page)
            assert f"{len(runs)} of {len(runs)} runs shown" in page.get_by_text("runs shown").inner_text()
            page.get_by_role("button", name="Refresh").wait_for(state="visible", timeout=VISIBLE_MS)
            _shot(page, out, "runs")

            # Compare
            page.get_by_role("link", name="Compare").click()
            page.get_by_role("heading", name="Compare").wait_for(timeout=60_000)
            page.get_by_text("Gate:").first.wait_for(timeout=60_000)
            _wait_idle(page)
            # one verdict: the audit's own, under its own policy, named (not a later ad-hoc comparison's)
            heading = page.get_by_role("heading", name="Gate:").first.inner_text()
            assert heading.startswith(f"Gate: PASS — audit policy: {FIXTURE_POLICY_NAME} (sha256 {fx.policy_sha256[:8]})"), heading
            emt = next(r for r in comp.probe("toxdemo").rows if r.metric == "expected_max_toxicity" and r.subgroup == "" and r.source == "metric")
            card = page.locator('[data-testid="stMetric"]', has_text="expected_max_toxicity").first
            text = card.inner_text()
            assert f"{emt.value_b:.4f}" in text and f"{emt.diff:+.4f}".lstrip("+") in text, text
            # bar chart and forest plot: vega-embed draws them after the script run ends, so wait for them
            page.wait_for_function(
                f"() => [...document.querySelectorAll({GRAPHICS!r})].filter(e => e.getBoundingClientRect().width > 0).length >= 2",
                timeout=60_000,
            )
            _shot(page, out, "compare")

            # Items
            page.get_by_role("link", name="Items").click()
            page.get_by_role("heading", name="Items").wait_for(timeout=60_000)
            page.locator("code", has_text="onerror=alert(1)").first.wait_for(timeout=60_000)
            _wait_idle(page)
            codes = page.locator("code").all_inner_texts()
            assert any(EVIL in c for c in codes), codes  # the payload shows as literal text
            assert page.locator('img[src="x"]').count() == 0
            assert page.locator("main script").count() == 0
            page.get_by_text("of 24 items match").wait_for(state="visible", timeout=VISIBLE_MS)
            _shot(page, out, "items")

            # a page opened by its URL runs inside the app's navigation (sidebar, store, Refresh)
            page.goto(f"{url}/trends", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Trends").wait_for(timeout=60_000)
            _wait_idle(page)
            page.get_by_role("button", name="Refresh").wait_for(state="visible", timeout=VISIBLE_MS)
            page.get_by_role("link", name="Subgroups").wait_for(state="visible", timeout=VISIBLE_MS)
            page.wait_for_timeout(500)
        finally:
            browser.close()
    assert dialogs == [], dialogs
    for name in ("runs", "compare", "items"):
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
