"""The openai-compat backend against a tiny in-process fake server (fast; no real model).

The fake (:class:`FakeServer`, ``http.server`` in a thread) speaks enough of the OpenAI API to
exercise everything the backend relies on: ``/v1/models``, ``/v1/completions`` (with ``echo`` and
``logprobs``: words are tokens, each word's log-probability a hash of it and its predecessor) and
``/v1/chat/completions``; and it can be told to fail (429/5xx, slow answers), to ignore or reject
fields, to give no prompt log-probabilities, and to require an API key. The real-server tests are
in tests/test_served_llama_cpp.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import probes
from rai_audit.config import parse_config
from rai_audit.errors import ModelLoadError, UserError
from rai_audit.models import registry
from rai_audit.models.openai_compat import fingerprint
from rai_audit.models.openai_compat.backend import OpenAICompatBackend
from rai_audit.models.openai_compat.client import Client, RequestRejected, ServedRequestError, ServerUnreachable
from rai_audit.models.openai_compat.endpoint import parse_reference
from rai_audit.probe import DatasetInfo, Item, Probe, ProbeParams
from rai_audit.requests import GenerationRequest, LoglikRequest, PseudoLoglikRequest, Sampling
from rai_audit.runner import run_probe_suite
from rai_audit.store import Store

WORDS = [" alpha", " beta", " gamma", " delta", " echo", " fox", " golf", " hotel", " india", " juliet"]
EXTRAS = ("top_k", "min_p", "repeat_penalty", "repetition_penalty")


def tokens(text: str) -> list[str]:
    """Words with their leading space; "<s>" (the fake's start token) is a token of its own."""
    head = ["<s>"] if text.startswith("<s>") else []
    return head + re.findall(r"\s*\S+|\s+", text[len(head[0]) if head else 0:])


def word_logprob(prev: str, tok: str, salt: str = "") -> float:
    h = int(hashlib.sha256(f"{salt}|{prev}|{tok}".encode()).hexdigest()[:8], 16)
    return -(0.2 + 3.0 * h / 0xFFFFFFFF)


def expected_loglik(context: str, continuation: str) -> float:
    """The fake's answer for a pair, computed the way the backend should (trailing space moves)."""
    stripped = context.rstrip()
    prompt, boundary = context + continuation, len(stripped)
    toks, pos, total = tokens(prompt), 0, 0.0
    for i, t in enumerate(toks):
        if pos + len(t) > boundary and i > 0:
            total += word_logprob(toks[i - 1], t)
        pos += len(t)
    return total


class FakeServer:
    """Settings are attributes; ``requests`` logs (path, body, headers) of every POST."""

    def __init__(self, **settings):
        self.model = "fake-model"
        self.salt = ""
        self.fail_next: list[int] = []  # statuses to answer the next POSTs with
        self.fail_prompts: dict[str, int] = {}  # prompt substring -> status (always)
        self.delay = 0.0
        self.echo = "yes"  # "yes" | "ignore" | "reject" | "shifted"
        self.top_k = "honour"  # "honour" | "ignore"
        self.seed = "honour"
        self.strict = False  # reject unknown fields with 400, like OpenAI's API
        self.api_key: str | None = None
        self.error_echoes_key = False
        self.requests: list[tuple[str, dict, dict]] = []
        self.in_flight = self.max_in_flight = 0
        self.__dict__.update(settings)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
                self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append((self.path, body, dict(self.headers)))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    status = fake.fail_next.pop(0) if fake.fail_next else None
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    reply = self._reply(body, status)
                finally:
                    # the request stops counting as in flight before its answer is sent: a client
                    # that has its answer may send the next request at once
                    with fake._lock:
                        fake.in_flight -= 1
                self._send(*reply)

            def _reply(self, body, status):
                status = status or next((s for p, s in fake.fail_prompts.items() if p in json.dumps(body)), None)
                if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return 401, {"error": "bad key"}
                if status:
                    msg = f"injected {status}" + (f" for key {fake.api_key}" if fake.error_echoes_key else "")
                    return status, {"error": msg}
                if body.get("echo") and fake.echo == "reject":
                    return 400, {"error": "echo and logprobs cannot be combined"}
                if fake.strict and any(k in body for k in EXTRAS):
                    return 400, {"error": f"Unrecognized request argument supplied: {sorted(set(body) & set(EXTRAS))}"}
                return 200, fake.answer(self.path, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def ref(self) -> str:
        return f"openai-compat:http://127.0.0.1:{self.port}/v1?backoff=0.001&retries=2#{self.model}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def posts(self, path: str = "/v1/completions") -> list[dict]:
        return [b for p, b, _ in self.requests if p == path]

    # -- the "model" ---------------------------------------------------------------------
    def generate(self, prompt: str, body: dict) -> list[str]:
        greedy_rng = random.Random(prompt + self.salt)
        hot = float(body.get("temperature", 1.0)) > 0
        if hot and self.top_k == "honour" and body.get("top_k") == 1 or hot and float(body.get("top_p", 1.0)) < 0.01:
            hot = False
        rng = random.Random(f"{body.get('seed')}|{prompt}" if self.seed == "honour" else time.time_ns()) if hot else greedy_rng
        out = [rng.choice(WORDS) for _ in range(int(body.get("max_tokens", 16)))]
        for stop in body.get("stop") or []:
            text = "".join(out)
            if stop in text:
                out = tokens(text[: text.index(stop)])
        return out

    def answer(self, path: str, body: dict) -> dict:
        if path == "/v1/chat/completions":
            gen = self.generate("<user>" + body["messages"][0]["content"], body)
            return {"choices": [{"message": {"role": "assistant", "content": "".join(gen)}, "finish_reason": "length"}],
                    "usage": {"completion_tokens": len(gen)}}
        prompt = body["prompt"]
        gen = self.generate(prompt, body)
        full = tokens(prompt) + gen
        # token i's log-probability given the token before it; "shifted" scores each echoed token
        # with the distribution after it, as llama-cpp-python 0.3.36 does
        lag = 0 if self.echo == "shifted" and body.get("echo") else 1
        values = [None] + [word_logprob(full[i - lag], full[i], self.salt) for i in range(1, len(full))]
        echo = bool(body.get("echo")) and self.echo in ("yes", "shifted")
        first = 0 if echo else len(full) - len(gen)
        toks, lps, tops, offsets, pos = full[first:], values[first:], [], [], 0 if echo else len(prompt)
        for t, lp in zip(toks, lps):
            tops.append(None if lp is None else ({t: lp} if lp > -1.5 else {t: lp, " zz": lp + 0.5}))
            offsets.append(pos)
            pos += len(t)
        choice = {"text": (prompt if echo else "") + "".join(gen), "finish_reason": "length",
                  "logprobs": {"tokens": toks, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}
                  if body.get("logprobs") else None}
        return {"choices": [choice], "usage": {"completion_tokens": len(gen)}}


@pytest.fixture
def fake():
    servers = []

    def make(**settings):
        s = FakeServer(**settings)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


class ServedGenParams(ProbeParams):
    n_items: int = 6
    seed: int = 0


class ServedGen(Probe):
    """Greedy generation, no scorer: records the text (a generation probe that needs no data)."""

    name = "served_gen"
    Params = ServedGenParams

    def load(self):
        return DatasetInfo(name="served_gen", source="memory"), [Item(id=f"g{i}", data={"p": f"Tell me {i}"}) for i in range(self.params.n_items)]

    def requests(self, item):
        return [GenerationRequest(item.data["p"], Sampling(max_new_tokens=4, temperature=0.0))]

    def record(self, item, responses, scores, scorer):
        return {"text": responses[0].texts[0], "outcomes": {"length": float(len(responses[0].texts[0]))}}

    def aggregate(self, records):
        v = np.array([r["outcomes"]["length"] for r in records], dtype=float)
        return {("mean_length", ""): (float(v.mean()) if len(v) else float("nan"), len(v))}


@pytest.fixture(autouse=True)
def _probes(monkeypatch):
    monkeypatch.setitem(probes.REGISTRY, "fake_mc", "tests.fakes:FakeMC")
    monkeypatch.setitem(probes.REGISTRY, "served_gen", "tests.test_openai_compat:ServedGen")


# -- the reference ----------------------------------------------------------------------------
def test_reference_syntax_and_options():
    ep = parse_reference("openai-compat:http://127.0.0.1:8080/v1?api_key_env=MY_KEY&concurrency=8&timeout=5#org/m:q4")
    assert (ep.base_url, ep.model, ep.api_key_env, ep.concurrency, ep.timeout) == (
        "http://127.0.0.1:8080/v1", "org/m:q4", "MY_KEY", 8, 5.0)
    assert ep.url("/completions") == "http://127.0.0.1:8080/v1/completions"
    assert ep.root_url("/props") == "http://127.0.0.1:8080/props"
    assert parse_reference("openai-compat:https://h/v1/").model is None
    for bad, why in [("openai-compat:ftp://h/v1#m", "http"), ("openai-compat:http://u:pw@h/v1#m", "credentials"),
                     ("openai-compat:http://h/v1?colour=red#m", "unknown option"),
                     ("openai-compat:http://h/v1?concurrency=0#m", "out of range"),
                     ("openai-compat:http://h/v1?api_key_env=a-b#m", "not an environment variable")]:
        with pytest.raises(ModelLoadError, match=why) as e:
            parse_reference(bad)
        assert e.value.exit_code == 2


# -- resolving: identity and capabilities -------------------------------------------------------
def test_resolve_records_the_server_and_a_restart_keeps_the_model_id(fake):
    a = fake()
    info = registry.resolve_model(a.ref)
    assert info.kind == "openai-compat" and info.path == f"http://127.0.0.1:{a.port}/v1" and info.files == {}
    served = info.served
    assert served["served_model"] == "fake-model" and served["api_key_env"] == "OPENAI_API_KEY"
    assert len(served["fingerprint"]) == len(fingerprint.PROMPTS)
    caps = served["capabilities"]
    assert {caps[k] for k in ("temperature", "seed", "top_k", "top_p", "max_tokens")} == {"honoured"}
    assert caps["prompt_logprobs"] is True and caps["prompt_logprobs_check"] == "aligned"
    assert caps["neutral_extras"]["top_k"] == 0 and served["warnings"] == []
    a.close()
    b = fake()  # "restarted" on another port: same model, same id
    assert registry.resolve_model(b.ref).model_id == info.model_id
    other = fake(salt="other weights")
    assert registry.resolve_model(other.ref).model_id != info.model_id


def test_a_server_without_completions_is_refused_with_exit_2(fake):
    s = fake()
    s.fail_prompts = {"prompt": 404}  # every /v1/completions request: a chat-only endpoint
    with pytest.raises(ModelLoadError, match="needs /completions") as e:
        registry.resolve_model(s.ref)
    assert e.value.exit_code == 2


def test_model_name_is_checked_against_the_server(fake):
    s = fake()
    assert registry.resolve_model(s.ref.replace("#fake-model", "")).served["served_model"] == "fake-model"
    with pytest.raises(ModelLoadError, match="does not serve a model named 'nope'.*fake-model"):
        registry.resolve_model(s.ref.replace("#fake-model", "#nope"))


def test_ignored_and_rejected_parameters_are_detected_and_refused(fake):
    ignoring = fake(top_k="ignore", seed="ignore")
    info = registry.resolve_model(ignoring.ref)
    caps = info.served["capabilities"]
    assert caps["top_k"] == "ignored" and caps["seed"] == "ignored" and caps["top_p"] == "honoured"
    assert any("ignores 'seed'" in w for w in info.served["warnings"])
    backend = registry.load_backend(info)
    with pytest.raises(UserError, match=r"top_k=40 \(the server ignored 'top_k'\)") as e:
        backend.generate([GenerationRequest("Hi", Sampling(temperature=1.0, top_k=40))])
    assert e.value.exit_code == 2
    assert backend.generate([GenerationRequest("Hi", Sampling(temperature=0.0, top_k=40))])  # greedy: top_k moot
    strict = fake(strict=True)  # OpenAI-like: unknown fields are a 400
    caps = registry.resolve_model(strict.ref).served["capabilities"]
    assert caps["neutral_extras"] == {} and caps["top_k"] == "rejected" and caps["top_p"] == "honoured"


def test_sampling_settings_reach_the_server_explicitly(fake):
    s = fake()
    backend = registry.load_backend(registry.resolve_model(s.ref))
    before = len(s.requests)
    out = backend.generate([GenerationRequest("Hi", Sampling(temperature=0.7, top_k=5, top_p=0.9, n=3, seed=7,
                                                             max_new_tokens=6, stop=(" golf",))),
                            GenerationRequest("Chat", Sampling(temperature=0.0, max_new_tokens=3), chat=True),
                            GenerationRequest("None", Sampling(max_new_tokens=0))])
    sent = [b for _, b, _ in s.requests[before:]]
    samples = [b for b in sent if b.get("prompt") == "Hi"]
    assert len(samples) == 3 and len({b["seed"] for b in samples}) == 3  # one request, one seed per sample
    assert all(b["temperature"] == 0.7 and b["top_k"] == 5 and b["top_p"] == 0.9 and b["max_tokens"] == 6
               and b["stop"] == [" golf"] and b["min_p"] == 0.0 and b["repeat_penalty"] == 1.0 for b in samples)
    assert [b["messages"] for b in sent if "messages" in b] == [[{"role": "user", "content": "Chat"}]]
    assert len(out[0].texts) == 3 and all(" golf" not in t for t in out[0].texts)
    assert out[2].texts == ("",) and not any(b.get("prompt") == "None" for b in sent)  # max 0: nothing asked
    again = backend.generate([GenerationRequest("Hi", Sampling(temperature=0.7, top_k=5, top_p=0.9, n=3, seed=7,
                                                               max_new_tokens=6, stop=(" golf",)))])
    assert again[0] == out[0]  # seeded samples reproduce


# -- log-likelihood ------------------------------------------------------------------------------
def test_loglikelihood_sums_the_continuation_tokens_by_text_offset(fake):
    s = fake()
    backend = registry.load_backend(registry.resolve_model(s.ref))
    reqs = [LoglikRequest("The cat sat on", " the mat"), LoglikRequest("The cat sat on ", "the mat"),
            LoglikRequest("Question q1:", " A")]
    got = backend.loglikelihood(reqs)
    for r, g in zip(reqs, got):
        assert g.logprob == pytest.approx(expected_loglik(r.context, r.continuation), abs=1e-9)
    assert [g.n_tokens for g in got] == [2, 2, 1]
    assert got[0].logprob == got[1].logprob  # trailing space of the context moves to the continuation
    body = s.posts()[-1]
    assert body["echo"] is True and body["logprobs"] == 1 and body["max_tokens"] == 1


def cli(*args: str) -> int:
    """``rai-audit ARGS`` in this process."""
    from rai_audit.cli import main

    return main(["-q", *args])


def test_an_empty_context_is_scored_after_the_start_token_or_refused(fake):
    s = fake()
    plain = registry.load_backend(registry.resolve_model(s.ref))
    with pytest.raises(UserError, match=r"empty context.*\?start=") as e:
        plain.loglikelihood([LoglikRequest("", "The cat sat")])
    assert e.value.exit_code == 2
    started = registry.load_backend(registry.resolve_model(s.ref.replace("?", "?start=%3Cs%3E&")))
    got = started.loglikelihood([LoglikRequest("", "The cat sat"), LoglikRequest("Hi", " there")])
    assert got[0].n_tokens == 3 and got[0].logprob == pytest.approx(
        word_logprob("<s>", "The") + word_logprob("The", " cat") + word_logprob(" cat", " sat"))
    assert got[1].logprob == pytest.approx(expected_loglik("Hi", " there"))  # a context: no start token
    # the backend sends requests concurrently, so the server may receive them in either order
    assert sorted(b["prompt"] for b in s.posts()[-2:]) == ["<s>The cat sat", "Hi there"]


@pytest.mark.parametrize("mode, check, says", [("ignore", "missing", "no prompt log-probabilities"),
                                               ("reject", "missing", "no prompt log-probabilities"),
                                               ("shifted", "misaligned", "misaligned")])
def test_a_server_without_usable_prompt_logprobs_refuses_loglik_probes_with_exit_2(fake, tmp_path, capsys, mode,
                                                                                   check, says):
    s = fake(echo=mode)
    info = registry.resolve_model(s.ref)
    caps = info.served["capabilities"]
    assert caps["prompt_logprobs"] is False and caps["prompt_logprobs_check"] == check
    assert any(says in w for w in info.served["warnings"])
    db = f"sqlite:///{tmp_path / 'p.sqlite'}"
    sent = len(s.posts())
    assert cli("probe", "--model", s.ref, "--probe", "fake_mc", "--db", db, "--bootstrap", "10") == 2
    err = capsys.readouterr().err
    assert "cannot score log-likelihoods" in err and says in err
    assert len(s.posts()) - sent == sent  # resolving again only: nothing scored
    assert cli("probe", "--model", s.ref, "--probe", "served_gen", "--db", db, "--bootstrap", "10") == 0


def test_requests_no_served_model_can_answer_are_refused(fake):
    info = registry.resolve_model(fake().ref)
    with pytest.raises(UserError, match="pseudo-log-likelihood"):
        OpenAICompatBackend(info).pseudo_loglikelihood([PseudoLoglikRequest("x")])
    with pytest.raises(UserError, match="chat=true"):
        registry.load_backend(info).loglikelihood([LoglikRequest("a", " b", chat=True)])
    with pytest.raises(UserError, match="Invalid decoding settings"):
        registry.load_backend(info).generate([GenerationRequest("a", Sampling(top_p=0.0))])


# -- failures -----------------------------------------------------------------------------------
def test_retries_back_off_exponentially_on_429_and_5xx():
    s = FakeServer(fail_next=[429, 503, 500])
    try:
        slept: list[float] = []
        client = Client(parse_reference(s.ref.replace("retries=2", "retries=3").replace("backoff=0.001", "backoff=0.25")),
                        sleep=slept.append)
        assert client.post("/completions", {"model": "fake-model", "prompt": "x", "max_tokens": 1})["choices"]
        assert slept == [0.25, 0.5, 1.0] and client.sent == 4
        s.fail_next = [503] * 4
        with pytest.raises(ServedRequestError, match="failed after 4 tries: HTTP 503") as e:
            client.post("/completions", {"model": "fake-model", "prompt": "x"})
        assert not isinstance(e.value, UserError)  # an item's error, not the run's
        s.fail_next = [404]
        with pytest.raises(RequestRejected):  # not retried
            client.post("/completions", {"prompt": "x"})
        assert client.sent == 9
    finally:
        s.close()


def test_a_timeout_is_retried_then_fails_the_request():
    s = FakeServer(delay=0.3)
    try:
        client = Client(parse_reference(s.ref.replace("#", "&timeout=0.05#")), sleep=lambda _: None)
        t0 = time.perf_counter()
        with pytest.raises(ServedRequestError, match="timed out after 0.05 s"):
            client.post("/completions", {"prompt": "x", "max_tokens": 1})
        assert client.sent == 3 and time.perf_counter() - t0 < 1.0
    finally:
        s.close()


def test_an_unreachable_server_stops_the_run_with_exit_2():
    s = FakeServer()
    ref = s.ref
    s.close()
    with pytest.raises(ServerUnreachable, match="could not be reached after 3 tries.*re-run the same command") as e:
        registry.resolve_model(ref)
    assert e.value.exit_code == 2


def test_persistent_5xx_on_one_item_is_that_items_error_record(fake, tmp_path):
    s = fake()
    cfg = parse_config({"probes": ["fake_mc"], "runtime": {"bootstrap": 10}, "seed": 1})
    with Store.open(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        info = registry.resolve_model(s.ref)
        s.fail_prompts = {"Question q007:": 503}
        out = run_probe_suite(cfg, model_ref=s.ref, store=store, model_info=info)
        records = store.records(out.run.run_id, "fake_mc")
        errors = {r["item_id"]: r["error"] for r in records if r.get("error")}
        assert out.run.status == "completed_with_errors" and len(records) == 40
        assert list(errors) == ["q007"] and "HTTP 503" in errors["q007"]


def test_answers_of_a_failed_batch_are_not_asked_again(fake):
    s = fake()
    backend = registry.load_backend(registry.resolve_model(s.ref.replace("?", "?concurrency=1&")))
    reqs = [LoglikRequest(f"Context {i}", " go") for i in range(6)]
    s.fail_prompts = {"Context 5 go": 503}
    with pytest.raises(ServedRequestError):
        backend.loglikelihood(reqs)
    s.fail_prompts = {}
    before = len(s.posts())
    got = backend.loglikelihood(reqs)  # as the runner asks again, item by item or as a batch
    assert [b["prompt"] for b in s.posts()[before:]] == ["Context 5 go"]
    assert [g.logprob for g in got] == pytest.approx([expected_loglik(r.context, r.continuation) for r in reqs])
    backend.loglikelihood(reqs[:1])
    assert len(s.posts()) == before + 2  # a salvaged answer is used once, then asked normally


def test_concurrency_is_bounded_and_order_kept(fake):
    s = fake()
    info = registry.resolve_model(s.ref.replace("?", "?concurrency=3&"))
    s.max_in_flight, s.delay = 0, 0.05
    reqs = [LoglikRequest(f"Context {i}", " go") for i in range(9)]
    got = registry.load_backend(info).loglikelihood(reqs)
    assert s.max_in_flight == 3
    assert [g.logprob for g in got] == pytest.approx([expected_loglik(r.context, r.continuation) for r in reqs])


def test_the_api_key_is_sent_but_never_stored_or_logged(fake, tmp_path, monkeypatch, caplog):
    secret = "sk-test-5f1e2d3c4b5a"
    monkeypatch.setenv("SERVED_KEY", secret)
    s = fake(api_key=secret, error_echoes_key=True)
    ref = s.ref.replace("?", "?api_key_env=SERVED_KEY&")
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "k.sqlite"
    cfg = parse_config({"probes": ["fake_mc", "served_gen"], "runtime": {"bootstrap": 10}})
    s.fail_prompts = {"Question q003:": 500}  # its error text echoes the key
    with Store.open(f"sqlite:///{db}") as store:
        out = run_probe_suite(cfg, model_ref=ref, store=store)
        records = store.records(out.run.run_id)
        assert any("***" in (r.get("error") or "") for r in records)
        assert store.get_run(out.run.run_id).provenance["model"]["served"]["api_key_env"] == "SERVED_KEY"
    assert all(h.get("Authorization") == f"Bearer {secret}" for _, _, h in s.requests)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in caplog.text and "***" in caplog.text
    monkeypatch.delenv("SERVED_KEY")
    with pytest.raises(ServerUnreachable, match="environment variable SERVED_KEY.*currently unset"):
        registry.resolve_model(ref)


def test_the_report_says_a_served_models_identity_rests_on_the_server(fake):
    from dataclasses import asdict

    from rai_audit.report.sections.provenance import served_note

    info = registry.resolve_model(fake().ref)
    note = served_note({"model": asdict(info)})
    assert "identity rests on the server" in note and info.path in note and "'fake-model'" in note
    assert served_note({"model": {"kind": "gguf"}}) is None and served_note(None) is None
