"""The sha256 manifest every report embeds, and ``verify(file, store)`` (`rai-audit report --verify`).

A manifest says what the report was made from and pins its own content:

* ``inputs``: for each run, the hashes of its config, its per-item records and its metrics as
  the store held them, the comparison's hash, and the store's URL (display form: password
  masked); ``verify`` recomputes the hashes from the store, so a report whose underlying results
  changed (or that came from another store) is caught. Given no store, ``verify`` opens the one
  the manifest names; when that cannot be opened it says which ``--db`` it needs instead of
  reporting a failed check.
* ``content_sha256``: the hash of the report itself without the manifest, so an edited number is
  caught. HTML and Markdown carry the manifest as a final comment line
  ``<!-- rai-audit-manifest: BASE64(JSON) -->`` and hash the text before it; JSON reports carry
  it under the ``"manifest"`` key and hash the canonical JSON of everything else; PDFs carry it
  in the document information dictionary, written as an incremental update appended after the
  bytes WeasyPrint produced, and hash those first ``content_length`` bytes. ``verify`` also
  rejects a PDF whose appended part holds anything but that information dictionary and its
  cross-reference section (another appended update could otherwise redraw pages).

This detects edits and drift, not forgery: anyone can recompute a sha256. For authenticity sign
the file (e.g. with Sigstore or GPG) in the release process.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rai_audit.errors import UserError
from rai_audit.hashing import sha256_json
from rai_audit.jsonable import jsonable
from rai_audit.store import integrity

if TYPE_CHECKING:
    from rai_audit.store import Store
    from rai_audit.store.protocol import ResultsStore

SCHEMA = "rai-audit-manifest/1"
_COMMENT = "\n<!-- rai-audit-manifest: {} -->\n"
_COMMENT_RE = re.compile(r"\n<!-- rai-audit-manifest: ([A-Za-z0-9+/=]+) -->\n?\Z")
_PDF_KEY = "/RaiAuditManifest"


# ------------------------------------------------------------------------------ inputs


def _comparison_digest(store: Any, comparison_id: str) -> str | None:
    """The saved comparison's digest, as the store seals it; None when it is not saved (yet)."""
    get = getattr(store, "get_comparison", None)
    if get is None:
        return None
    try:
        return integrity.comparison_digest(get(comparison_id).result)
    except Exception:  # noqa: BLE001 - not saved (yet): the manifest says so, verify skips it
        return None


def store_display_url(store: Any) -> str | None:
    """The store's URL with any password masked (what a manifest records and ``verify`` reopens)."""
    shown = getattr(store, "display_url", None)
    if isinstance(shown, str) and shown:
        return shown
    url = getattr(store, "url", None)
    if not url:
        return None
    from rai_audit.store.engine import display_url

    return display_url(str(url))


def input_digests(store: ResultsStore, run_ids: Sequence[str], comparison_id: str | None = None) -> dict[str, Any]:
    """Hashes of everything in the store a report is made from, and the store's (display) URL."""
    runs = {}
    for run_id in run_ids:
        run = store.get_run(run_id)
        runs[run.run_id] = {
            "config_hash": run.config_hash,
            "model_id": run.model_id,
            # the digests the store seals a completed run with (rai_audit.store.integrity)
            **integrity.seal(store, run.run_id),
        }
    comparison = None
    if comparison_id:
        comparison = {"comparison_id": comparison_id, "sha256": _comparison_digest(store, comparison_id)}
    return {"runs": runs, "comparison": comparison, "store": store_display_url(store)}


def _manifest(fmt: str, content_sha256: str, inputs: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, "format": fmt, "content_sha256": content_sha256, **extra, "inputs": dict(inputs)}


def _encode(manifest: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).decode("ascii")


def _decode(blob: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(blob.encode("ascii"), validate=True))


# ------------------------------------------------------------------------------ embedding


def embed_text(body: str, fmt: str, inputs: Mapping[str, Any]) -> str:
    """HTML or Markdown text with its manifest appended as a final comment line."""
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return body + _COMMENT.format(_encode(_manifest(fmt, digest, inputs)))


def json_content_digest(report: Mapping[str, Any]) -> str:
    return sha256_json({k: v for k, v in report.items() if k != "manifest"})


def embed_json(report: Mapping[str, Any]) -> str:
    """The JSON report text with its manifest under ``"manifest"``."""
    body = jsonable({k: v for k, v in report.items() if k != "manifest"})
    body["manifest"] = _manifest("json", json_content_digest(body), report.get("inputs") or {})
    return json.dumps(body, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def embed_pdf(pdf: bytes, inputs: Mapping[str, Any]) -> bytes:
    """Append the manifest to a PDF as an incremental update of its information dictionary."""
    from pypdf import PdfWriter

    manifest = _manifest("pdf", hashlib.sha256(pdf).hexdigest(), inputs, content_length=len(pdf))
    writer = PdfWriter(io.BytesIO(pdf), incremental=True)
    writer.add_metadata({_PDF_KEY: _encode(manifest)})
    out = io.BytesIO()
    writer.write(out)
    data = out.getvalue()
    if not data.startswith(pdf):  # pragma: no cover - guards a pypdf behaviour change
        raise RuntimeError("pypdf rewrote the PDF instead of appending an incremental update")
    return data


# ------------------------------------------------------------------------------ verification


@dataclass
class Check:
    name: str
    ok: bool | None  # None = not checked
    detail: str = ""


@dataclass
class VerifyResult:
    path: str
    format: str | None
    checks: list[Check] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    store_url: str | None = None  # the store the inputs were checked against (display form)
    store_problem: str | None = None  # why the store could not be opened (then nothing was checked against one)

    @property
    def failed(self) -> bool:
        return not self.checks or any(c.ok is False for c in self.checks)

    @property
    def ok(self) -> bool:
        return not self.failed and self.store_problem is None

    @property
    def exit_code(self) -> int:
        """0 verified; 1 a check failed (edited file, drifted or foreign results); 2 the store
        to check against could not be opened (the message names the --db it needs)."""
        if self.failed:
            return 1
        return 2 if self.store_problem else 0

    def format_text(self) -> str:
        lines = [f"{'OK  ' if c.ok else ('SKIP' if c.ok is None else 'FAIL')}  {c.name}: {c.detail}" for c in self.checks]
        if self.failed:
            lines.append(f"{self.path}: VERIFICATION FAILED")
        elif self.store_problem:
            lines.append(f"{self.path}: content checked, inputs NOT verified: {self.store_problem}")
        else:
            lines.append(f"{self.path}: verified" + (f" against {self.store_url}" if self.store_url else ""))
        return "\n".join(lines)


def _detect(path: Path, data: bytes) -> str:
    if data.startswith(b"%PDF"):
        return "pdf"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".md", ".markdown"):
        return "md"
    return "html"


def _pdf_tail_is_manifest_only(tail: bytes) -> tuple[bool, str]:
    bodies = re.split(rb"\b\d+\s+\d+\s+obj\b", tail)[1:]
    if tail.count(b"%%EOF") != 1:
        return False, "the appended part has more than one update section"
    for body in bodies:
        body = body.split(b"endobj", 1)[0]
        if _PDF_KEY.encode() not in body and b"/Type /XRef" not in body and b"/Type/XRef" not in body:
            return False, "the appended part changes objects other than the manifest"
    return True, ""


def _content_check(fmt: str, data: bytes) -> tuple[dict[str, Any] | None, Check]:
    name = "content sha256"
    if fmt == "pdf":
        from pypdf import PdfReader

        try:
            meta = PdfReader(io.BytesIO(data)).metadata or {}
            manifest = _decode(str(meta[_PDF_KEY]))
        except Exception as e:  # noqa: BLE001
            return None, Check("manifest", False, f"no readable rai-audit manifest in the PDF ({type(e).__name__})")
        n = int(manifest.get("content_length", -1))
        if not 0 < n <= len(data):
            return manifest, Check(name, False, "content length out of range")
        tail_ok, why = _pdf_tail_is_manifest_only(data[n:])
        if not tail_ok:
            return manifest, Check(name, False, why)
        ok = hashlib.sha256(data[:n]).hexdigest() == manifest.get("content_sha256")
        return manifest, Check(name, ok, "matches" if ok else "the PDF content was modified after it was made")
    if fmt == "json":
        try:
            report = json.loads(data.decode("utf-8"))
            manifest = report["manifest"]
        except Exception as e:  # noqa: BLE001
            return None, Check("manifest", False, f"no readable rai-audit manifest in the JSON ({type(e).__name__})")
        ok = json_content_digest(report) == manifest.get("content_sha256")
        return manifest, Check(name, ok, "matches" if ok else "the JSON report was modified after it was made")
    text = data.decode("utf-8", errors="replace")
    idx = text.rfind("\n<!-- rai-audit-manifest: ")
    m = _COMMENT_RE.match(text, idx) if idx >= 0 else None
    if m is None:
        return None, Check("manifest", False, "no rai-audit manifest comment at the end of the file (or text after it)")
    try:
        manifest = _decode(m.group(1))
    except Exception as e:  # noqa: BLE001
        return None, Check("manifest", False, f"unreadable manifest ({type(e).__name__})")
    ok = hashlib.sha256(text[:idx].encode("utf-8")).hexdigest() == manifest.get("content_sha256")
    return manifest, Check(name, ok, "matches" if ok else "the report text was modified after it was made")


def _open_recorded_store(url: str | None, *, explicit: bool) -> Store:
    """Open the store to verify against without creating anything: a SQLite file that does not
    exist, a masked password or an unreachable server is a UserError saying what to pass."""
    from rai_audit.store import Store
    from rai_audit.store.engine import parse_url, resolve_url, sqlite_path

    resolved = resolve_url(url)
    parsed = parse_url(resolved)
    if "***" in (parsed.password or "") and not explicit:
        env = os.environ.get("RAI_AUDIT_DB")
        if env and store_display_url_of(resolve_url(env)) == store_display_url_of(resolved):
            resolved, parsed = resolve_url(env), parse_url(resolve_url(env))
        else:
            raise UserError("its URL is recorded without the password")
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is None:
            raise UserError("it was an in-memory store, which no longer exists")
        if not path.exists():
            raise UserError(f"the file {path} does not exist on this machine")
    return Store.open(resolved)


def store_display_url_of(url: str) -> str:
    from rai_audit.store.engine import display_url

    return display_url(url)


def verify(file: str | Path, store: ResultsStore | None = None, db_url: str | None = None) -> VerifyResult:
    """Check a report file's embedded manifest against its content and against a store.

    ``store``: the store to check the inputs against. ``None`` opens one: ``db_url`` when given,
    else the store the manifest records (the one the report was made from), else the default
    store (``RAI_AUDIT_DB`` or the default SQLite file). A store that cannot be opened is not a
    failed check: the result carries ``store_problem`` naming the ``--db`` it needs (exit code 2).
    """
    path = Path(file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"Cannot read report {str(path)!r}: {e.strerror}. Give the path of an HTML, PDF, Markdown or JSON report.") from None
    fmt = _detect(path, data)
    manifest, content = _content_check(fmt, data)
    result = VerifyResult(path=str(path), format=fmt, checks=[content], manifest=manifest)
    if manifest is None:
        return result
    inputs = manifest.get("inputs") or {}
    recorded = inputs.get("store")
    opened = None
    if store is None:
        url = db_url or recorded
        try:
            opened = _open_recorded_store(url, explicit=db_url is not None)
        except Exception as e:  # noqa: BLE001 - any failure to open becomes the message below
            shown = store_display_url_of(url) if url else "the default store"
            why = str(e).rstrip(".") if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
            if db_url is not None:
                hint = "check the URL given with --db"
            elif recorded:
                hint = (f"run `rai-audit report --verify {path} --db URL` with the URL of that store"
                        + (" (its password included)" if "***" in recorded else f", e.g. --db {recorded} where it is reachable"))
            else:
                hint = f"this report does not name its store; run `rai-audit report --verify {path} --db URL` with the store it was made from"
            result.store_problem = f"cannot open the store {shown} ({why}); {hint}."
            return result
        store = opened
    result.store_url = store_display_url(store)
    try:
        _check_inputs(result, inputs, store, recorded)
    finally:
        if opened is not None:
            opened.close()
    return result


def _check_inputs(result: VerifyResult, inputs: Mapping[str, Any], store: ResultsStore, recorded: str | None) -> None:
    elsewhere = f"; the report was made from {recorded}" if recorded and recorded != result.store_url else ""
    for run_id, expected in (inputs.get("runs") or {}).items():
        try:
            actual = input_digests(store, [run_id])["runs"][run_id]
        except UserError as e:
            result.checks.append(Check(f"run {run_id}", False, f"not in this store ({e}){elsewhere}"))
            continue
        for key in ("config_hash", "records_sha256", "metrics_sha256"):
            ok = actual.get(key) == expected.get(key)
            result.checks.append(Check(f"run {run_id} {key}", ok, "matches the store" if ok else f"differs from the store{elsewhere}"))
    comp = inputs.get("comparison")
    if comp:
        if comp.get("sha256") is None:
            result.checks.append(Check(f"comparison {comp.get('comparison_id')}", None, "was not saved in the store when the report was made"))
        else:
            actual = _comparison_digest(store, comp["comparison_id"])
            result.checks.append(Check(
                f"comparison {comp['comparison_id']}", actual == comp["sha256"],
                "matches the store" if actual == comp["sha256"] else ("not in this store" + elsewhere if actual is None else "differs from the store" + elsewhere),
            ))
