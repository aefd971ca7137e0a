"""The Trajectory page in a real browser: start the dashboard as `rai-audit dashboard` does, over a
trajectory audit's store (tests/trajectory_fixture.py, its checkpoints' comparisons saved under
the audit's policy), let headless Chromium draw the charts, click a checkpoint's point and land
on the Compare page showing that checkpoint against the base (its verdict under the audit's
policy), and follow the page's link to the checkpoint's items. Screenshots go to the test's tmp
dir (``RAI_AUDIT_ARTIFACTS`` when set); the Trajectory page's also to
docs/screenshots/dashboard-trajectory.png (the README's) when RAI_AUDIT_UPDATE_SCREENSHOTS=1, like
the other dashboard screenshots.

Needs Debian's chromium at /usr/bin/chromium and PyPI playwright (no `playwright install`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rai_audit.trajectory.analysis import analyse_trajectory
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _artifacts, _requirements, _wait_idle, running_dashboard
from tests.trajectory_fixture import EXTRA_PROBES_ENV, build_trajectory, registered

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
DRIFT = {4: 0.02, 8: 0.08, 12: 0.3}  # step 4 passes, step 8 is inconclusive, the final step fails
# each point of a chart (SVG renderer): one path per datum in the point layer, in position order
POINTS = '[data-testid="stVegaLiteChart"] svg g.mark-symbol path'



@pytest.fixture(scope="module", autouse=True)
def _probes_registered():
    """The fixture's probes in the registry for this module only (other tests compare the registry
    with the shipped probes)."""
    with registered():
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _requirements()
    fx = build_trajectory(tmp_path_factory.mktemp("trajectory-browser") / "trajectory.sqlite", drift=DRIFT)
    analysis = analyse_trajectory(fx.store, fx.trajectory_id, n_boot=200)  # as the audit does, under its recorded policy
    fx.store.close()
    with running_dashboard(fx.url, tmp_path_factory.mktemp("trajectory-browser-log"),
                           {"RAI_AUDIT_EXTRA_PROBES": EXTRA_PROBES_ENV}) as url:
        yield analysis, url


def _shot(page, out: Path, name: str, publish: bool = False) -> Path:
    """A full-page screenshot in ``out``; ``publish``: also the README's, when asked to update those."""
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if publish and os.environ.get("RAI_AUDIT_UPDATE_SCREENSHOTS") == "1":
        dest = REPO / "docs" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / f"dashboard-{name}.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def _picked(page) -> list[str]:
    """What the page's select boxes show as picked (Run A, Run B, ...), in page order."""
    return page.locator('[data-testid="stSelectbox"]').evaluate_all(
        "els => els.map(e => { const i = e.querySelector('input'); return (i && i.value) || e.innerText; })")


def _open_trajectory(page, url: str) -> None:
    page.goto(f"{url}/trajectory", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Trajectory", exact=True).wait_for(timeout=60_000)
    page.get_by_text("Trajectory gate:").first.wait_for(timeout=120_000)  # the analysis has run
    _wait_idle(page)
    page.wait_for_function(f"() => document.querySelectorAll({POINTS!r}).length >= 8", timeout=60_000)  # 2 charts x 4 points
    page.wait_for_timeout(800)  # vega-embed sizes charts to their container after first paint


def test_click_a_point_opens_its_comparison(server, tmp_path):
    from playwright.sync_api import sync_playwright

    analysis, url = server
    out = _artifacts(tmp_path)
    mid = analysis.point(8)  # inconclusive under the audit's policy
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            _open_trajectory(page, url)
            for p_ in analysis.points[1:]:  # every checkpoint's verdict is on the page
                page.get_by_text(f"{p_.label} ({p_.verdict})", exact=False).first.wait_for(state="visible", timeout=30_000)
            page.get_by_text("Trend of toxicity_probability").first.wait_for(state="visible", timeout=30_000)
            _shot(page, out, "trajectory", publish=True)

            # click step 8 on the first chart (points are drawn in position order: base, 4, 8, 12)
            page.locator(POINTS).nth(2).click()
            page.get_by_role("heading", name="Compare", exact=True).wait_for(timeout=60_000)
            page.get_by_text("Gate:").first.wait_for(timeout=60_000)
            _wait_idle(page)
            assert f"comparison={mid.comparison_id}" in page.url, page.url
            heading = page.get_by_role("heading", name="Gate:").first.inner_text()
            assert heading.startswith(f"Gate: {mid.verdict.upper()}"), heading
            runs = _picked(page)
            assert analysis.base_run[:8] in runs[0] and mid.run_id[:8] in runs[1], runs
            page.wait_for_function(  # its bar charts and forest plot drawn before the screenshot
                "() => [...document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] canvas, "
                "[data-testid=\"stVegaLiteChart\"] svg.marks')].filter(e => e.getBoundingClientRect().width > 0).length >= 2",
                timeout=60_000)
            page.wait_for_timeout(800)
            _shot(page, out, "trajectory-compare")

            # the keyboard path: pick the checkpoint, follow its link to the items
            _open_trajectory(page, url)
            page.get_by_role("link", name="Its items beside the base's").click()
            page.get_by_role("heading", name="Items", exact=True).wait_for(timeout=60_000)
            page.get_by_text("items match").first.wait_for(timeout=60_000)
            _wait_idle(page)
            final = analysis.points[-1]  # the picker's default: the final point
            assert f"comparison={final.comparison_id}" in page.url, page.url
            runs = _picked(page)
            assert analysis.base_run[:8] in runs[0] and final.run_id[:8] in runs[1], runs
            _shot(page, out, "trajectory-items")
        finally:
            browser.close()
    assert dialogs == [], dialogs
