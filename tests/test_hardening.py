"""Hardening cases through the CLI, as a user or a scheduler meets them: bad input exits 2 and
leaves the store exactly as it was; two identical `probe` commands started together make one run;
Ctrl+C ends with one line that says how to resume and exit 130; an internal error is exit 70 with
one line, never a traceback or the exit code of a failed gate."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from rai_audit.store import Store
from rai_audit.store.schema import APPEND_ONLY_TABLES, metadata
from tests.tiny_models import tiny_model_dir


def rai(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "rai_audit", "--quiet", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def table_counts(url: str) -> dict[str, int]:
    with Store.open(url) as s, s.engine.connect() as conn:
        return {t: conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[t])).scalar() for t in APPEND_ONLY_TABLES}


def _one_probe(db: str, model: Path, *extra: str) -> subprocess.CompletedProcess:
    return rai("probe", "--model", str(model), "--probe", "crows_pairs", "--limit", "6", "--bootstrap", "50", "--db", db, *extra)


def test_truncated_weights_exit_2_and_write_nothing(tmp_path, shared_data, db_url):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir("llama"), broken)
    w = broken / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    before = table_counts(db_url)
    r = _one_probe(db_url, broken)
    assert r.returncode == 2, r.stderr
    assert "truncated" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert table_counts(db_url) == before


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_exits_2_before_a_run_even_when_cached(tmp_path, shared_data, db_url):
    model = tiny_model_dir("llama")
    before = table_counts(db_url)
    r = _one_probe(db_url, model, "--device", "cuda")
    assert r.returncode == 2 and "CUDA is not available" in r.stderr, r.stderr
    assert table_counts(db_url) == before
    assert _one_probe(db_url, model).returncode == 0  # every answer is cached now
    cached = table_counts(db_url)
    r = _one_probe(db_url, model, "--device", "cuda")
    assert r.returncode == 2 and "CUDA is not available" in r.stderr, r.stderr
    assert table_counts(db_url) == cached


@pytest.mark.parametrize("content", ["", "header"], ids=["empty", "header-only"])
def test_empty_benchmark_file_is_an_error_naming_the_file(tmp_path, shared_data, content):
    data = tmp_path / "data"
    shutil.copytree(shared_data / "crows_pairs", data / "crows_pairs")
    csv = data / "crows_pairs" / "crows_pairs_anonymized.csv"
    header = csv.read_text(encoding="utf-8").splitlines()[0]
    csv.write_text(header + "\n" if content == "header" else "", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    before = table_counts(db)
    r = rai("probe", "--model", str(tiny_model_dir("llama")), "--probe", "crows_pairs", "--db", db, "--data-dir", str(data))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "crows_pairs" in r.stderr and "Traceback" not in r.stderr
    assert table_counts(db) == before


@pytest.mark.slow
def test_two_identical_probe_commands_at_once_make_one_run(tmp_path, shared_data, db_url):
    model = tiny_model_dir("llama")
    argv = [sys.executable, "-m", "rai_audit", "--quiet", "probe", "--model", str(model), "--probe",
            "crows_pairs,winogender", "--limit", "16", "--bootstrap", "50", "--db", db_url]
    for attempt in range(3):  # the race is in the first seconds; repeat it (a new seed, a new run key each time)
        procs = [subprocess.Popen(argv + ["--seed", str(attempt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        with Store.open(db_url) as s:
            runs = [r for r in s.list_runs() if r.seed == attempt]
            assert len(runs) == 1, [(r.run_id, r.status) for r in runs]
            for probe in ("crows_pairs", "winogender"):
                ids = [r["item_id"] for r in s.records(runs[0].run_id, probe)]
                assert len(ids) == len(set(ids)) == 16
        # one of the two reports the run the other made
        assert sum("already complete" in err for _, err in outs) == 1, outs


@pytest.mark.parametrize("command", ["probe", "run"])
def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path, shared_data, command):
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    model = str(tiny_model_dir("llama"))
    if command == "probe":
        args = ["probe", "--model", model, "--probe", "identity_toxicity", "--limit", "40", "--db", db]
    else:
        cfg = tmp_path / "audit.yaml"
        cfg.write_text(f"name: ctrl-c\nmodels: {{base: '{model}', tuned: '{model}'}}\n"
                       "probes: [{name: identity_toxicity, params: {limit: 40}}]\n", encoding="utf-8")
        args = ["run", str(cfg), "--db", db, "--format", ""]
    env = {**os.environ, "RAI_AUDIT_CHUNK_ROWS": "8"}
    proc = subprocess.Popen([sys.executable, "-m", "rai_audit", "--quiet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:  # wait until records are being written
        try:
            with Store.open(db) as s:
                runs = s.list_runs()
                if runs and s.records(runs[0].run_id):
                    break
        except Exception:  # noqa: BLE001 - the store may not exist yet
            pass
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("rai-audit: interrupted") and "re-run the same command to resume" in lines[-1]
    assert "Traceback" not in err
    with Store.open(db) as s:
        run = s.list_runs()[0]
        assert run.status == "interrupted"
        kept = len(s.records(run.run_id))
    assert kept > 0  # completed items are kept, and the re-run resumes
    again = rai(*args, env=env)
    assert again.returncode in (0, 1, 3), again.stderr  # run ends with its gate's verdict
    if command == "probe":
        assert "Resumed run" in again.stderr, again.stderr


def test_internal_error_is_exit_70_with_one_line(tmp_path):
    Store.open(f"sqlite:///{tmp_path}/s.sqlite").close()  # an existing store: the planted bug is what fails
    code = ("import sys\n"
            "import rai_audit.store.store as st\n"
            "def boom(*a, **k): raise KeyError('planted')\n"
            "st.Store.get_run = boom  # a bug anywhere below the CLI\n"
            "from rai_audit.cli import main\n"
            f"sys.exit(main(['compare', 'a', 'b', '--db', 'sqlite:///{tmp_path}/s.sqlite']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 70, r.stderr
    assert "internal error: KeyError" in r.stderr and "-v" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_plain_progress_lines_off_a_terminal_at_a_bounded_rate():
    from rai_audit.display import PlainProgress

    now = [0.0]
    lines: list[str] = []
    p = PlainProgress(write=lines.append, interval_s=10.0, clock=lambda: now[0])
    task = p.add_task("bbq", total=100, completed=20)  # resumed: 20 already done
    now[0] = 4.0
    p.advance(task, 10)  # the first update always prints
    now[0] = 8.0
    p.advance(task, 10)  # 4 s later: within the interval, silent
    now[0] = 20.0
    p.advance(task, 20)  # 16 s after the last line: prints; 40 done in 20 s = 2.00/s, 20 left = 0:10
    now[0] = 21.0
    p.advance(task, 40)  # finished: always prints; 80 done in 21 s
    assert lines == [
        "progress  bbq: 30/100 items (30%), 2.50 items/s, ETA 0:28",
        "progress  bbq: 60/100 items (60%), 2.00 items/s, ETA 0:20",
        "progress  bbq: 100/100 items (100%), 3.81 items/s, done",
    ]


def test_probe_off_a_terminal_prints_progress_lines(tmp_path, shared_data):
    r = subprocess.run([sys.executable, "-m", "rai_audit", "probe", "--model", str(tiny_model_dir("llama")), "--probe",
                        "crows_pairs", "--limit", "6", "--bootstrap", "20", "--db", f"sqlite:///{tmp_path / 's.sqlite'}"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "progress  crows_pairs: 6/6 items (100%)" in r.stderr and "done" in r.stderr
    assert "FutureWarning" not in r.stderr and "past_key_values" not in r.stderr


def test_runs_shows_why_a_finetune_failed(tmp_path):
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    with Store.open(db) as s:
        rid = s.create_run(kind="finetune", run_key="k", model_id=None, model_reference="default", probes=[],
                           config={}, provenance={}, scorer=None, datasets={}, seed=0)
        s.add_event(rid, "failed", {"message": "ValueError: the mixture has no examples"})
    r = subprocess.run([sys.executable, "-m", "rai_audit", "runs", "--db", db], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "finetune" in r.stdout and "failed" in r.stdout and "the mixture has no examples" in r.stdout


@pytest.mark.slow
def test_sigterm_on_the_dashboard_stops_its_server_child(tmp_path):
    from tests.test_readme_tour import _dashboard

    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    Store.open(db).close()
    env = {**os.environ, "RAI_AUDIT_DB": db}
    _dashboard(["dashboard"], env, tmp_path, stop=signal.SIGTERM)  # raises if the port is still served


def test_each_demo_profile_has_its_own_folder(tmp_path):
    from rai_audit import demo as d

    default, quick = (d.output_dir(str(tmp_path / "out"), d.PROFILES[p]) for p in ("default", "quick"))
    assert default != quick and default.parent == quick.parent == (tmp_path / "out").resolve()
    cfg_d = d.demo_config(d.PROFILES["default"], default, None, None)
    cfg_q = d.demo_config(d.PROFILES["quick"], quick, None, None)
    assert cfg_d.output_dir != cfg_q.output_dir and cfg_d.store != cfg_q.store
    ignored = subprocess.run(["git", "check-ignore", "-q", "rai-audit-demo/quick/results.sqlite"],
                             cwd=Path(__file__).resolve().parents[1])
    assert ignored.returncode == 0  # the demo's default output folder is git-ignored


def test_an_unchanged_audit_still_names_its_reports(tmp_path, shared_data):
    """Re-running an unchanged audit does nothing new, and still says where its reports are."""
    from rai_audit.audit import run_audit
    from rai_audit.config import parse_config

    model = str(tiny_model_dir("llama"))
    cfg = parse_config({"name": "again", "models": {"base": model, "tuned": model},
                        "probes": [{"name": "crows_pairs", "params": {"limit": 8}}], "runtime": {"bootstrap": 50},
                        "output_dir": str(tmp_path / "out")})
    store = Store.open(f"sqlite:///{tmp_path / 's.sqlite'}")
    first = run_audit(cfg, store=store, formats="html,json")
    second = run_audit(cfg, store=store, formats="html,json")
    assert second.unchanged and second.comparison_id == first.comparison_id
    assert second.reports == first.reports and set(second.reports) == {"html", "json"}


def test_a_closed_pipe_is_not_a_failed_gate(tmp_path):
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    with Store.open(db) as s:
        for i in range(500):  # more output than a pipe buffers, so the writer meets the closed pipe
            s.create_run(kind="finetune", run_key=f"k{i}", model_id=None, model_reference=f"m{i}", probes=[],
                         config={}, provenance={}, scorer=None, datasets={}, seed=0)
    r = subprocess.run(f"{sys.executable} -m rai_audit runs -n 500 --db {db} | head -1; echo \"${{PIPESTATUS[0]}}\"",
                       shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120)
    status = int(r.stdout.strip().splitlines()[-1])
    assert status in (0, 141), r  # stopped by the closed pipe like any Unix tool, never exit 1 ("gate failed")
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr
    for argv in (f"runs -n 500 --db {db}", "--help"):  # a plain print, and Rich's help (which meets the pipe first)
        r = subprocess.run(f"{sys.executable} -m rai_audit {argv} | true; echo \"${{PIPESTATUS[0]}}\"", shell=True,
                           executable="/bin/bash", capture_output=True, text=True, timeout=120)
        assert (r.stdout.strip(), r.stderr) == ("141", ""), r  # `true` never reads: the first write meets it gone


@pytest.mark.parametrize("command", [["runs"], ["show", "latest"], ["gate", "latest"], ["compare", "a", "b"],
                                     ["report", "latest"], ["verify"], ["dashboard"]])
def test_a_mistyped_store_path_is_exit_2_and_creates_nothing(tmp_path, command):
    missing = tmp_path / "no" / "such" / "dir" / "results.sqlite"
    r = rai(*command, "--db", f"sqlite:///{missing}", timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"No results store at {missing}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "no").exists()


def test_the_cli_leaves_sigpipe_alone_so_a_closed_socket_is_an_error_not_a_silent_death():
    """The CI failure of 2026-12-07: an audit run died of SIGPIPE (exit -13, no message) while its
    finetune step checkpointed, because ``main()`` had set SIGPIPE to its default action for the
    whole process; any write to a pipe or socket whose peer closed then killed the audit."""
    code = (
        "import signal, socket, sys\n"
        "from rai_audit.cli import main\n"
        "assert main(['--version']) == 0\n"
        "print(signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN, file=sys.stderr)\n"
        "a, b = socket.socketpair(); b.close()\n"
        "try:\n"
        "    a.send(b'x')\n"
        "except BrokenPipeError:\n"
        "    print('an exception the writer handles', file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r
    assert r.stderr.split("\n")[:2] == ["True", "an exception the writer handles"], r.stderr


def test_a_closed_stdout_ends_quietly_with_141_and_other_broken_pipes_are_reported(monkeypatch, capsys):
    """In process: standard output whose reader went away is the quiet 141 of ``yes | head``; a
    BrokenPipeError from anywhere else is an internal error with its one-line message."""
    import importlib

    cli_app = importlib.import_module("rai_audit.cli.app")  # the package's `app` attribute is the Typer

    @cli_app.app.command("raise-broken-pipe", hidden=True)
    def _raise() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    try:
        assert cli_app.main(["raise-broken-pipe"]) == 70  # captured stdout: its reader is still there
        assert "internal error: BrokenPipeError" in capsys.readouterr().err

        read_end, write_end = os.pipe()
        os.close(read_end)
        with os.fdopen(write_end, "w") as closed_stdout:
            monkeypatch.setattr(sys, "stdout", closed_stdout)
            assert cli_app._stdout_reader_gone(None)
            assert cli_app.main(["raise-broken-pipe"]) == 141
            monkeypatch.undo()
        assert capsys.readouterr().err == ""
    finally:
        cli_app.app.registered_commands[:] = [c for c in cli_app.app.registered_commands if c.name != "raise-broken-pipe"]
