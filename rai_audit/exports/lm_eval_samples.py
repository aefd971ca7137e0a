"""lm-evaluation-harness per-sample records (``samples_<task>_<date>.jsonl``) for one probe of a run.

Each line has lm-eval's fields (``lm_eval.result_schema.SampleResult``): ``doc_id`` (the item's
position in the run), ``doc`` (the stored item), ``target`` (``str`` of the item's gold answer:
its ``gold``/``label``/``answer``/``target`` field, else ""), ``arguments``
(``{"gen_args_<i>": {"arg_0": ..., "arg_1": ...}}``: context and continuation of a
log-likelihood request, prompt and generation settings of a generation request, text and scored
spans of a pseudo-log-likelihood request), ``resps`` (per request: ``[[logprob, is_greedy]]`` or
the sampled texts, as strings, as lm-eval writes them), ``filtered_resps`` (filter ``none``),
``filter``, ``metrics`` (the record's per-item outcome names), ``doc_hash`` / ``prompt_hash`` /
``target_hash`` (sha256, as lm-eval computes them) and one field per outcome. ``rai_audit`` holds
the record as the store has it (item id, cluster, subgroups, error).

Requests are rebuilt from the stored item with the run's probe parameters and answers read from
the store's response cache. Where that is impossible (a probe whose prompts need its whole data
set, such as k-shot exemplars, or a store without the cached answers) ``arguments`` and ``resps``
are empty and the record still carries what the model answered. An item that failed has no
metric fields and its error in ``rai_audit.error``.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from rai_audit.store.api import RunRecord
    from rai_audit.store.protocol import ResultsStore

TARGET_FIELDS = ("gold", "label", "answer", "target")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def probe_params(run: RunRecord, probe: str) -> dict[str, Any]:
    """The probe's parameters as the run configured them (the run's seed filled in as the runner does)."""
    for spec in (run.config or {}).get("probes") or []:
        if isinstance(spec, dict) and spec.get("name") == probe:
            return dict(spec.get("params") or {})
    return {}


def probe_instance(run: RunRecord, probe: str) -> Any | None:
    """The run's probe, built with its parameters (None when its class is not registered here)."""
    try:
        import probes

        cls = probes.probe_class(probe)
        params = probe_params(run, probe)
        merged = {"seed": run.seed, **params} if "seed" in cls.Params.model_fields else params
        return cls(cls.Params(**merged))
    except Exception:  # noqa: BLE001 - an unregistered or changed probe: samples without requests
        return None


def _arguments(req: Any) -> dict[str, Any]:
    from rai_audit.requests import GenerationRequest, LoglikRequest

    if isinstance(req, LoglikRequest):
        return {"arg_0": req.context, "arg_1": req.continuation}
    if isinstance(req, GenerationRequest):
        s = req.sampling
        return {"arg_0": req.prompt, "arg_1": {
            "until": list(s.stop), "max_gen_toks": s.max_new_tokens, "do_sample": not s.greedy,
            "temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p, "n": s.n, "seed": s.seed}}
    return {"arg_0": req.text, "arg_1": [list(span) for span in req.spans]}


def _resps(kind: str, result: dict[str, Any]) -> tuple[list[Any], Any]:
    """(resps, filtered_resps) of one answered request, values as strings like lm-eval's."""
    if kind in ("loglik", "pll"):
        pair = [str(result["logprob"]), str(bool(result["is_greedy"]))]
        return [pair], pair
    texts = [str(t) for t in result.get("texts", [])]
    return texts, (texts[0] if len(texts) == 1 else texts)


def output_type(kinds: Sequence[str]) -> str:
    """lm-eval's output_type for a probe whose items make requests of these kinds."""
    if "generate" in kinds:
        return "generate_until"
    if "pll" in kinds:
        return "pseudo_loglikelihood"
    return "multiple_choice" if len(kinds) > 1 else "loglikelihood"


def _target(record: dict[str, Any], doc: dict[str, Any]) -> str:
    for source in (record, doc):
        for key in TARGET_FIELDS:
            if source.get(key) is not None:
                return str(source[key])
    return ""


def samples(store: ResultsStore, run: RunRecord, probe: str) -> tuple[list[dict[str, Any]], str | None]:
    """The run's records of ``probe`` as lm-eval samples, and the probe's lm-eval output_type
    (None when no request could be rebuilt)."""
    from rai_audit.requests import cache_key, request_kind

    records = store.records(run.run_id, probe)
    dataset_id = ((run.datasets or {}).get(probe) or {}).get("dataset_id")
    items = {it.id: it for it in store.items(probe, dataset_id)} if dataset_id else {}
    instance = probe_instance(run, probe)
    requests: dict[str, list[Any]] = {}
    for rec in records:
        item = items.get(str(rec.get("item_id")))
        if instance is not None and item is not None:
            try:
                requests[item.id] = list(instance.requests(item))
            except Exception:  # noqa: BLE001 - prompts that need the loaded data set (k-shot)
                pass
    keys = {iid: [cache_key(run.model_id or "", r) for r in reqs] for iid, reqs in requests.items()}
    answers = store.get_responses([k for ks in keys.values() for k in ks]) if keys else {}
    kinds: list[str] = []
    out = []
    for doc_id, rec in enumerate(records):
        iid = str(rec.get("item_id"))
        item = items.get(iid)
        doc = dict(item.data) if item is not None else {"item_id": iid}
        reqs = requests.get(iid, [])
        found = [answers.get(k) for k in keys.get(iid, [])]
        complete = bool(reqs) and all(found)
        if reqs and not kinds:
            kinds = [request_kind(r) for r in reqs]
        pairs = [_resps(a["kind"], a["result"]) for a in found] if complete else []
        target = _target(rec, doc)
        arguments = {f"gen_args_{i}": _arguments(r) for i, r in enumerate(reqs)} if complete else {}
        outcomes = {} if rec.get("error") else {k: v for k, v in (rec.get("outcomes") or {}).items()}
        first_arg = arguments.get("gen_args_0", {}).get("arg_0", "")
        sample = {
            "doc_id": doc_id, "doc": doc, "target": target, "arguments": arguments,
            "resps": [p[0] for p in pairs], "filtered_resps": [p[1] for p in pairs], "filter": "none",
            "metrics": list(outcomes),
            "doc_hash": sha256(json.dumps(doc, indent=2, default=str, ensure_ascii=False)),
            "prompt_hash": sha256(str(first_arg)), "target_hash": sha256(target),
            **outcomes,
            "rai_audit": {"item_id": iid, "cluster": rec.get("cluster"), "subgroups": rec.get("subgroups") or {},
                          "error": rec.get("error"), "record": rec},
        }
        out.append(sample)
    return out, (output_type(kinds) if kinds else None)
