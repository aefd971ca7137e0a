"""Dashboard speed on a big store: first paint < 3 s, page switch < 1 s (issue 7).

Builds (once, through the store API) a store of 50 runs x 10,000 items: 25 audits, each a base
and a tuned run of two probes with 5,000 items each, bootstrap metrics per run, and a saved
comparison of the newest pair (as `rai-audit run` leaves it). Then measures, in the same process
side by side:

* ``browser``: the real server (``python -m dashboards.launch``) driven by Chromium through
  playwright: first paint = from navigation to the Runs table being drawn and the script idle;
  page switch = from clicking a sidebar link to that page's content drawn and the script idle.
  Each page is visited twice: the first visit reads the store (cold cache), the second is served
  from the cache (warm).
* ``apptest``: the same pages as script runs under streamlit.testing.v1.AppTest (no browser),
  cold (caches cleared) and warm.

Prints each time beside its budget and the ratio. Usage::

    python bench/dashboard.py [--store /tmp/rai-dash-bench.sqlite] [--mode both|browser|apptest]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIRST_PAINT_BUDGET = 3.0
SWITCH_BUDGET = 1.0
PAGES = ["Compare", "Subgroups", "Items", "Trends", "Reports", "Runs"]
# What each page draws last (its script has finished when this is visible); unique per page.
DONE = {
    "Runs": '[data-testid="stExpander"] >> text=/ - complete/',
    "Compare": "text=All gate rows",
    "Subgroups": "text=correction across",
    "Items": 'h3:has-text("Prompt")',
    "Trends": "text=Data behind the chart",
    "Reports": 'button:has-text("Generate report")',
}
CHROMIUM = "/usr/bin/chromium"


def build_store(path: Path, audits: int = 25, items_per_probe: int = 5000) -> str:
    """50 runs x 10,000 items through the store API (skipped when the file exists)."""
    from rai_audit.comparison import compare_runs, save_comparison
    from rai_audit.store import Store
    from tests import dashboard_fixture as fx

    url = f"sqlite:///{path}"
    if path.exists():
        return url
    t0 = time.perf_counter()
    tmp = path.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    turl = f"sqlite:///{tmp}"
    base_tox, tuned_tox = fx.tox_records(False, n=items_per_probe), fx.tox_records(True, n=items_per_probe, evil=True)
    base_bias, tuned_bias = fx.bias_records(False, n=items_per_probe), fx.bias_records(True, n=items_per_probe)
    metrics = {}
    for key, recs in (("bt", base_tox), ("tt", tuned_tox), ("bb", base_bias), ("tb", tuned_bias)):
        probe = fx.PROBES["toxdemo" if key[1] == "t" else "biasdemo"]()
        metrics[key] = fx._metrics(recs, probe)
    with Store.open(turl) as store:
        for a in range(audits):
            ids = {}
            for role, tox, bias, mk in (("base", base_tox, base_bias, "b"), ("tuned", tuned_tox, tuned_bias, "t")):
                info = fx._model(f"{role}-v{a}")
                store.add_model(info)
                with store.transaction():
                    run_id = store.create_run(
                        kind="probe", run_key=f"bench-{a}-{role}", model_id=info.model_id, model_reference=info.reference,
                        probes=["toxdemo", "biasdemo"], config=fx._config("bench-audit"), provenance={"bench": True},
                        scorer=fx.SCORER, datasets={"toxdemo": {"name": "toxdemo"}, "biasdemo": {"name": "biasdemo"}},
                        seed=1234, audit_id=f"bench-{a}", role=role,
                    )
                    store.add_records(run_id, "toxdemo", tox)
                    store.add_records(run_id, "biasdemo", bias)
                    store.add_metrics(run_id, metrics[mk + "t"] + metrics[mk + "b"])
                    store.add_event(run_id, "completed", {"errors": {}, "error_count": 0})
                ids[role] = run_id
            print(f"  audit {a + 1}/{audits} written ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        comp = compare_runs(store, ids["base"], ids["tuned"], n_boot=100, seed=0, probe_loader=fx.probe_loader)
        save_comparison(store, comp)
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    tmp.rename(path)
    print(f"built {path} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return url


def _row(label: str, seconds: float, budget: float) -> str:
    return f"  {label:<34} {seconds:7.3f} s   budget {budget:.1f} s   ratio {seconds / budget:5.2f}   {'OK' if seconds < budget else 'OVER'}"


def bench_apptest(url: str) -> list[tuple[str, float, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["RAI_AUDIT_DB"] = url
    out = []
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=300)
    t = time.perf_counter()
    at.run()
    out.append(("apptest first run (Runs, cold)", time.perf_counter() - t, FIRST_PAINT_BUDGET))
    for visit in ("cold", "warm"):
        for page in PAGES:
            at.switch_page(f"app_pages/{page.lower()}.py")
            t = time.perf_counter()
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            out.append((f"apptest {page} ({visit})", time.perf_counter() - t, SWITCH_BUDGET))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


def bench_browser(url: str) -> list[tuple[str, float, float]]:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "dashboards.launch", "--db", url, "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    out = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the dashboard did not start")
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t = time.perf_counter()
            page.goto(base, wait_until="domcontentloaded")
            page.locator(DONE["Runs"]).first.wait_for(timeout=120_000)
            _idle(page)
            out.append(("browser first paint (Runs)", time.perf_counter() - t, FIRST_PAINT_BUDGET))
            for visit in ("first visit", "repeat"):
                for name in PAGES:
                    t = time.perf_counter()
                    page.get_by_role("link", name=name).click()
                    page.get_by_role("heading", name=name).first.wait_for(timeout=120_000)
                    page.locator(DONE[name]).first.wait_for(timeout=120_000)
                    _idle(page)
                    out.append((f"browser {name} ({visit})", time.perf_counter() - t, SWITCH_BUDGET))
            browser.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="/tmp/rai-dash-bench.sqlite")
    ap.add_argument("--mode", choices=["both", "browser", "apptest"], default="both")
    args = ap.parse_args()
    url = build_store(Path(args.store))
    from rai_audit.store import Store

    with Store.open(url) as s:
        runs = s.list_runs()
        n_items = len(s.completed_items(runs[0].run_id, "toxdemo")) + len(s.completed_items(runs[0].run_id, "biasdemo"))
    print(f"store: {url}: {len(runs)} runs x {n_items} items")
    results = []
    if args.mode in ("both", "browser"):
        if Path(CHROMIUM).exists():
            results += bench_browser(url)
        else:
            print(f"(browser mode skipped: {CHROMIUM} not found)")
    if args.mode in ("both", "apptest"):
        results += bench_apptest(url)
    for label, seconds, budget in results:
        print(_row(label, seconds, budget))


if __name__ == "__main__":
    main()
