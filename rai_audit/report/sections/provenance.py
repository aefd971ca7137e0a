"""Appendix C: provenance. Per model and finetune run: run id, model id, config hash, and every
provenance and config entry (model B's entries equal to model A's are not repeated); and the
store inputs this report's manifest pins (records and metrics sha256 per run)."""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Optional

from pydantic import BaseModel

from rai_audit.report.formatting import clip
from rai_audit.report.sections.base import Section, SectionContext


class ProvenanceEntry(BaseModel):
    key: str  # "a", "b" or "finetune-<n>"
    finetune: bool
    model_reference: Any = None
    run_id: Any = None
    model_id: Any = None
    config_hash: Any = None
    vs_a: bool  # entries equal to model A's are left out
    entries: list[tuple[str, str]]  # (dotted key, short value)
    served_note: Optional[str] = None  # set when the model was audited through a server (openai-compat)


class InputDigests(BaseModel):
    run_id: str
    records_sha256: Any = None
    metrics_sha256: Any = None


class Provenance(BaseModel):
    entries: list[ProvenanceEntry]
    inputs: list[InputDigests]


def _flat(d: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(d, Mapping):
        for k, v in d.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and d and all(isinstance(x, Mapping) for x in d):
        for i, v in enumerate(d):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        text = d if isinstance(d, str) else json.dumps(d, default=str)
        yield prefix, clip(text, 300)


def flatten(d: Any, base: Any = None, label: str = "") -> list[tuple[str, str]]:
    """(dotted key, short value) pairs of a nested mapping; with ``base``, only the pairs that
    differ from (or are absent in) ``base``'s; ``label`` prefixes each key."""
    seen = dict(_flat(base)) if isinstance(base, Mapping) else {}
    return [(f"{label}{k}", v) for k, v in _flat(d) if not (k in seen and seen[k] == v)]


def served_note(provenance: Any) -> Optional[str]:
    """The plain statement a served model's entry carries: its identity rests on the server."""
    model = (provenance or {}).get("model") if isinstance(provenance, Mapping) else None
    if not isinstance(model, Mapping) or model.get("kind") != "openai-compat":
        return None
    served = model.get("served") or {}
    return (f"Served model: audited through the server at {served.get('endpoint') or model.get('path')} "
            f"(served name {served.get('served_model')!r}). No weights were hashed: the model id is a fingerprint of "
            "the server's answers to a fixed prompt set, so the model's identity rests on the server, and rai-audit "
            "cannot verify which weights it ran.")


def build(ctx: SectionContext) -> Provenance:
    prov = ctx.report.provenance
    base = prov.get("a") or {}
    entries = []
    for key, p in prov.items():
        vs: Optional[Mapping[str, Any]] = base if key == "b" else None
        pairs = flatten(p.get("provenance"), (vs or {}).get("provenance") if vs else None)
        if p.get("config"):
            pairs += flatten(p["config"], (vs or {}).get("config") if vs else None, "config.")
        entries.append(ProvenanceEntry(key=key, finetune=key.startswith("finetune"), model_reference=p.get("model_reference"),
                                       run_id=p.get("run_id"), model_id=p.get("model_id"), config_hash=p.get("config_hash"),
                                       vs_a=vs is not None, entries=pairs, served_note=served_note(p.get("provenance"))))
    runs = (ctx.report.inputs.get("runs") or {}).items()
    return Provenance(entries=entries, inputs=[InputDigests(run_id=k, records_sha256=d.get("records_sha256"),
                                                            metrics_sha256=d.get("metrics_sha256")) for k, d in runs])


SECTION = Section("provenance", Provenance, build)
