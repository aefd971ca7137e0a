"""The results store, on SQLite and (when RAI_AUDIT_TEST_PG_URL is set) on PostgreSQL.

Start a local PostgreSQL for these tests with ``eval "$(.ci/start_postgres.sh)"``; each
PostgreSQL test gets a private schema in that database (selected by ``search_path``).
"""

from __future__ import annotations

import json

import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from rai_audit.backend import ModelInfo
from rai_audit.errors import StoreError, UserError
from rai_audit.probe import DatasetInfo, Item
from rai_audit.store import MetricRow, Store
from rai_audit.store import migrate
from rai_audit.store.engine import resolve_url
from rai_audit.store.schema import APPEND_ONLY_TABLES, metadata

REPO = Path(__file__).resolve().parent.parent
from tests.databases import PG_URL, needs_pg  # noqa: E402


@pytest.fixture
def store(db_url):
    s = Store.open(db_url)
    yield s
    s.close()


def _run(store: Store, *, key: str = "key", model: str = "m" * 64, ref: str = "hf:org/model",
         probes=("winogender",), kind: str = "probe", audit_id=None, role=None, label=None) -> str:
    return store.create_run(
        kind=kind, run_key=key, model_id=model, model_reference=ref, probes=list(probes),
        config={"probes": list(probes), "seed": 1}, provenance={"python": "3"},
        scorer={"name": "profanity-check", "threshold": 0.5, "operator": ">="},
        datasets={"winogender": "d" * 32}, seed=1, audit_id=audit_id, role=role, label=label,
    )


def _model(model_id: str = "a" * 64) -> ModelInfo:
    return ModelInfo(model_id=model_id, reference="hf:org/model@abc", kind="hf", revision="abc",
                     architecture="LlamaForCausalLM", files={"model.safetensors": "f" * 64})


def _response(key: str, value: float = -1.5) -> dict:
    return {"key": key, "model_id": "a" * 64, "kind": "loglik",
            "request": {"context": "c", "continuation": " x"}, "result": {"logprob": value, "is_greedy": True}}


def _score(key: str, p: float = 0.25) -> dict:
    return {"key": key, "scorer_id": "s1", "text_sha256": "t" * 64, "scores": {"toxicity": p},
            "truncated": False, "error": None}


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / f"child_{uuid.uuid4().hex[:8]}.py"
    path.write_text(textwrap.dedent(body))
    return path


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# -- opening, location, migrations --------------------------------------------------------------

def _protocol_members(proto: type) -> dict[str, object]:
    """The members a protocol declares (its own and its bases'), by name."""
    out: dict[str, object] = {}
    for cls in reversed(proto.__mro__):
        if cls is object or cls.__module__ in ("typing", "typing_extensions"):
            continue
        out.update({name: None for name in getattr(cls, "__annotations__", {})})  # data attributes
        out.update({name: v for name, v in vars(cls).items() if not name.startswith("_")})
    return out


def test_the_store_satisfies_its_protocol(tmp_path):
    """Store implements every member of ResultsStore (and so of each of its parts) with the same
    signature, and ResultsStore lists every public member of Store: the contract callers see."""
    import inspect

    from rai_audit.store import protocol

    members = _protocol_members(protocol.ResultsStore)
    public = {n for n in dir(Store) if not n.startswith("_")} - {"open"}  # open: the constructor
    assert public <= set(members), f"Store members missing from ResultsStore: {sorted(public - set(members))}"
    for name, declared in members.items():
        impl = inspect.getattr_static(Store, name, None)
        if declared is None:  # a data attribute, set by __init__
            continue
        assert impl is not None, f"Store has no {name}"
        if isinstance(declared, property):
            assert isinstance(impl, property), name
            continue
        want, got = inspect.signature(declared), inspect.signature(impl)
        assert list(got.parameters.values()) == list(want.parameters.values()), name
        returns = got.return_annotation
        if want.return_annotation.startswith("AbstractContextManager["):  # a @contextmanager generator
            assert hasattr(impl, "__wrapped__") and returns.startswith("Iterator["), name
            returns = returns.replace("Iterator[", "AbstractContextManager[", 1)
        assert returns == want.return_annotation, name
    with Store.open(f"sqlite:///{tmp_path}/s.sqlite") as store:
        for name in protocol.__all__:
            assert isinstance(store, getattr(protocol, name)), name
    assert not isinstance(object(), protocol.ResponseCache)


def test_default_path_is_under_rai_audit_home_in_wal_mode(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("RAI_AUDIT_HOME", str(home))
    with Store.open() as s:
        assert s.url == f"sqlite:///{home / 'results.sqlite'}"
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert (home / "results.sqlite").is_file()
    import sqlite3

    raw = sqlite3.connect(home / "results.sqlite")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    raw.close()


def test_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("RAI_AUDIT_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_url(None) == f"sqlite:///{tmp_path}/.local/share/rai-audit/results.sqlite"
    monkeypatch.setenv("RAI_AUDIT_DB", str(tmp_path / "env.sqlite"))
    assert resolve_url(None) == f"sqlite:///{tmp_path}/env.sqlite"
    assert resolve_url(tmp_path / "explicit.db") == f"sqlite:///{tmp_path}/explicit.db"
    assert resolve_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert resolve_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"


def test_bad_urls_and_unwritable_paths_raise_store_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="Cannot create the folder"):
        Store.open(blocker / "sub" / "results.sqlite")
    with pytest.raises(StoreError, match="not a valid database URL"):
        Store.open("postgresql+psycopg://[::bad")
    with pytest.raises(StoreError, match="SQLite .* or PostgreSQL"):
        Store.open("mysql://u@localhost/db")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        Store.open(garbage)
    assert issubclass(StoreError, UserError) and StoreError.exit_code == 2


def test_unreachable_postgres_is_a_store_error_without_password():
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="Cannot reach the results store") as err:
        Store.open("postgresql+psycopg://someone:s3cr3t-pw@127.0.0.1:1/nowhere")
    assert "s3cr3t-pw" not in str(err.value)
    assert "127.0.0.1:1/nowhere" in str(err.value)
    assert time.monotonic() - t0 < 15
    with pytest.raises(StoreError):
        migrate.current_revision("postgresql://someone:pw@127.0.0.1:1/nowhere")


def test_empty_database_is_migrated_to_head_matching_schema(db_url):
    assert migrate.current_revision(db_url) is None
    with Store.open(db_url) as s:
        assert migrate.current_revision(db_url) == migrate.head_revision() == "0003"
        assert migrate._declared_head(str(migrate.MIGRATIONS_DIR)) == "0003"  # the no-Alembic fast path
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        with s.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    with Store.open(db_url):  # a second open finds head and changes nothing
        pass
    assert migrate.upgrade(db_url) == ("0003", "0003")


@pytest.fixture
def migrations_with_0004(tmp_path, monkeypatch):
    """A copy of the shipped migrations plus a no-op revision 0004; returns a switch function."""
    shipped = migrate.MIGRATIONS_DIR
    newer = tmp_path / "migrations"
    shutil.copytree(shipped, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / "0004_test.py").write_text(textwrap.dedent('''
        """test revision"""
        from alembic import op
        revision = "0004"
        down_revision = "0003"
        branch_labels = None
        depends_on = None
        def upgrade():
            op.execute("SELECT 1")
        def downgrade():
            pass
    '''))

    def use(which: str) -> None:
        monkeypatch.setattr(migrate, "MIGRATIONS_DIR", newer if which == "newer" else shipped)

    return use


def test_older_revision_asks_for_db_upgrade_and_newer_asks_to_upgrade_rai_audit(db_url, migrations_with_0004):
    Store.open(db_url).close()  # at 0003
    migrations_with_0004("newer")  # this "rai-audit" ships 0004
    assert migrate.head_revision() == migrate._declared_head(str(migrate.MIGRATIONS_DIR)) == "0004"
    with pytest.raises(StoreError, match=r"revision 0003, older .*`rai-audit db upgrade`"):
        Store.open(db_url)
    assert migrate.current_revision(db_url) == "0003"  # open does not migrate a non-empty store
    assert migrate.upgrade(db_url) == ("0003", "0004")
    Store.open(db_url).close()
    migrations_with_0004("shipped")  # back to a rai-audit that only knows 0003
    with pytest.raises(StoreError, match=r"revision 0004, .* newer rai-audit. Upgrade rai-audit"):
        Store.open(db_url)
    with pytest.raises(StoreError, match="newer rai-audit"):
        migrate.upgrade(db_url)


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    import sqlite3

    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE customers (id INTEGER)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="not a rai-audit results store"):
        Store.open(path)


# -- append-only --------------------------------------------------------------------------------

def _fill_every_table(store: Store) -> str:
    store.add_model(_model())
    info = DatasetInfo(name="winogender", source="/data/winogender", files={"all.tsv": "e" * 64})
    store.add_dataset(info)
    store.add_items(info.dataset_id, "winogender", [Item(id="i1", data={"sentence": "x"}, cluster="t1")])
    run_id = _run(store)
    other = _run(store, key="other")
    store.add_event(run_id, "completed")
    store.add_responses([_response("r1")])
    store.add_scores([_score("s1")])
    store.add_records(run_id, "winogender", [{"item_id": "i1", "outcomes": {"correct": 1.0}}])
    store.add_metrics(run_id, [MetricRow("winogender", "accuracy", "", 1.0, 1)])
    store.add_artifact(run_id, "report.html", "report", "/tmp/report.html", "b" * 64)
    store.add_comparison(run_id, other, {"alpha": 0.05}, {"delta": 0.0})
    store.add_trajectory_point("t" * 64, axis="step", position=0, run_id=run_id, meta={"label": "base"})
    with store.audit_lock("fill"):
        pass
    return run_id


def test_trajectory_points_are_ordered_by_position_and_first_write_wins(store):
    base, ckpt, late = _run(store), _run(store, key="ckpt"), _run(store, key="late")
    store.add_trajectory_point("a" * 64, axis="step", position=6, run_id=ckpt, finetune_run=base, audit_id="x")
    store.add_trajectory_point("a" * 64, axis="step", position=0, run_id=base, audit_id="x", meta={"label": "base"})
    store.add_trajectory_point("a" * 64, axis="step", position=6, run_id=late)  # same position again: ignored
    points = store.trajectory_points("a" * 8)
    assert [(p.position, p.run_id, p.label) for p in points] == [(0, base, "base"), (6, ckpt, "step 6")]
    assert points[1].finetune_run == base
    assert [[p.position for p in tr] for tr in store.list_trajectories(audit_id="x")] == [[0, 6]]
    assert [p.trajectory_id for p in store.trajectories_of_run(ckpt)] == ["a" * 64]
    assert store.trajectory_points("b" * 64) == []


def test_update_and_delete_are_refused_on_every_result_table(store):
    _fill_every_table(store)
    assert set(APPEND_ONLY_TABLES) == set(metadata.tables)
    with store.engine.connect() as conn:
        counts = {tbl: conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[tbl])).scalar()
                  for tbl in APPEND_ONLY_TABLES}
    assert all(n >= 1 for n in counts.values()), counts  # a trigger on an empty table proves nothing
    for tbl in APPEND_ONLY_TABLES:
        col = next(iter(metadata.tables[tbl].columns)).name
        statements = [f"UPDATE {tbl} SET {col} = {col}", f"DELETE FROM {tbl}"]
        if store.dialect == "postgresql":
            statements.append(f"TRUNCATE {tbl} CASCADE")
        for stmt in statements:
            with store.engine.connect() as conn:
                with pytest.raises(sa.exc.IntegrityError, match=f"rai-audit: {tbl} is append-only"):
                    conn.exec_driver_sql(stmt)
                conn.rollback()
    with store.engine.connect() as conn:
        after = {tbl: conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[tbl])).scalar()
                 for tbl in APPEND_ONLY_TABLES}
    assert after == counts


def test_replacing_a_row_through_a_raw_connection_is_refused(store):
    """SQLite's INSERT OR REPLACE deletes the old row without firing DELETE triggers; PostgreSQL's
    ON CONFLICT DO UPDATE is an update. Both must leave every stored row as it was."""
    _fill_every_table(store)
    with store.engine.connect() as conn:
        before = {tbl: [tuple(r) for r in conn.execute(sa.select(metadata.tables[tbl]))] for tbl in APPEND_ONLY_TABLES}
    for tbl in APPEND_ONLY_TABLES:
        table = metadata.tables[tbl]
        with store.engine.connect() as conn:
            row = dict(conn.execute(sa.select(table)).mappings().first())
        cols = ", ".join(row)
        params = ", ".join(f":{c}" for c in row)
        if store.dialect == "sqlite":
            stmts = [f"INSERT OR REPLACE INTO {tbl} ({cols}) VALUES ({params})", f"REPLACE INTO {tbl} ({cols}) VALUES ({params})"]
            pk = [c.name for c in table.primary_key.columns]
        else:
            pk = [c.name for c in table.primary_key.columns]
            first = next(c for c in row if c not in pk)
            stmts = [f"INSERT INTO {tbl} ({cols}) VALUES ({params}) ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {first} = EXCLUDED.{first}"]
        for stmt in stmts:
            with store.engine.connect() as conn:
                bound = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()}
                with pytest.raises(sa.exc.IntegrityError, match=f"rai-audit: {tbl} is append-only"):
                    conn.execute(sa.text(stmt), bound)
                conn.rollback()
    with store.engine.connect() as conn:
        after = {tbl: [tuple(r) for r in conn.execute(sa.select(metadata.tables[tbl]))] for tbl in APPEND_ONLY_TABLES}
    assert after == before


def test_migration_0002_guards_every_key_of_the_schema():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "m0002", migrate.MIGRATIONS_DIR / "versions" / "0002_insert_guards.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from rai_audit.store.schema import unique_keys

    assert mod.KEYS == {tbl: unique_keys(metadata.tables[tbl]) for tbl in APPEND_ONLY_TABLES if tbl in mod.KEYS}
    spec3 = importlib.util.spec_from_file_location(
        "m0003", migrate.MIGRATIONS_DIR / "versions" / "0003_trajectory_points.py")
    mod3 = importlib.util.module_from_spec(spec3)
    spec3.loader.exec_module(mod3)
    assert mod3.KEYS == unique_keys(metadata.tables["trajectory_points"])
    assert set(mod.KEYS) | {"trajectory_points"} == set(APPEND_ONLY_TABLES)


def test_content_addressed_writes_are_insert_or_ignore(store):
    run_id = _run(store)
    store.add_responses([_response("k1", -1.0), _response("k2", -2.0)])
    store.add_responses([_response("k1", -9.0), _response("k3", -3.0)])  # k1 again: ignored
    got = store.get_responses(["k1", "k2", "k3", "missing"])
    assert {k: v["result"]["logprob"] for k, v in got.items()} == {"k1": -1.0, "k2": -2.0, "k3": -3.0}
    assert got["k1"]["kind"] == "loglik"

    store.add_scores([_score("s1", 0.1), {**_score("s2"), "scores": None, "error": "boom", "truncated": True}])
    store.add_scores([_score("s1", 0.9)])
    scores = store.get_scores(["s1", "s2"])
    assert scores["s1"] == {"scores": {"toxicity": 0.1}, "truncated": False, "error": None}
    assert scores["s2"] == {"scores": None, "truncated": True, "error": "boom"}

    store.add_model(_model())
    store.add_model(ModelInfo(model_id="a" * 64, reference="/other/path", kind="dir"))
    assert store.get_model("a" * 64)["reference"] == "hf:org/model@abc"
    assert store.get_model("nope") is None

    store.add_records(run_id, "p", [{"item_id": "1", "v": 1}])
    store.add_records(run_id, "p", [{"item_id": "1", "v": 2}, {"item_id": "2", "v": 3}])
    assert [(r["item_id"], r["v"]) for r in store.records(run_id)] == [("1", 1), ("2", 3)]
    store.add_metrics(run_id, [MetricRow("p", "m", "", 0.5, 2)])
    store.add_metrics(run_id, [MetricRow("p", "m", "", 0.7, 2)])
    assert [m.value for m in store.metrics(run_id)] == [0.5]


def test_many_keys_are_fetched_in_chunks(store):
    keys = [f"{i:064x}" for i in range(12_000)]  # more than one IN (...) chunk
    store.add_responses([_response(k, float(i)) for i, k in enumerate(keys)])
    got = store.get_responses(keys + keys[:10])
    assert len(got) == 12_000 and got[keys[11_999]]["result"]["logprob"] == 11_999.0


# -- transactions -------------------------------------------------------------------------------

def test_transaction_commits_together_and_rolls_back_on_error(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            run_id = _run(store)
            store.add_responses([_response("t1")])
            store.add_records(run_id, "p", [{"item_id": "1"}])
            raise RuntimeError("killed mid-chunk")
    assert store.list_runs() == []
    assert store.get_responses(["t1"]) == {}
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(metadata.tables["records"])).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(metadata.tables["run_events"])).scalar() == 0

    seen_from_other_thread = {}
    with store.transaction():
        run_id = _run(store)
        store.add_responses([_response("t2")])
        # Not yet visible to another thread (own connection): the writes are one commit.
        th = threading.Thread(target=lambda: seen_from_other_thread.update(store.get_responses(["t2"])))
        th.start()
        th.join()
        assert store.get_responses(["t2"]) != {}  # visible inside the transaction
    assert seen_from_other_thread == {}
    assert store.get_run(run_id).status == "running"
    assert set(store.get_responses(["t2"])) == {"t2"}


def test_nested_transaction_is_a_savepoint(store):
    with store.transaction():
        store.add_responses([_response("outer")])
        with pytest.raises(ValueError):
            with store.transaction():
                store.add_responses([_response("inner")])
                raise ValueError("inner fails")
    assert set(store.get_responses(["outer", "inner"])) == {"outer"}


# -- runs ---------------------------------------------------------------------------------------

def test_get_run_latest_prefix_and_unknown(store):
    with pytest.raises(StoreError, match="no runs yet"):
        store.get_run("latest")
    ids = [_run(store, key=f"k{i}") for i in range(17)]  # 17 ids > 16 hex digits: a shared first digit
    assert store.get_run("latest").run_id == ids[-1]
    assert store.get_run(ids[3]).run_id == ids[3]
    assert store.get_run(ids[3][:12]).run_id == ids[3]
    assert store.get_run(ids[3][:12].upper()).run_id == ids[3]
    first = [i[0] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    with pytest.raises(StoreError, match="ambiguous"):
        store.get_run(shared)
    with pytest.raises(StoreError, match="rai-audit runs"):
        store.get_run("zz-not-an-id")
    with pytest.raises(StoreError, match="rai-audit runs"):
        store.get_run("0" * 32 if not any(i.startswith("0" * 32) for i in ids) else "f" * 32)
    with pytest.raises(StoreError):
        store.get_run("%")
    assert store.find_run_by_key("k5").run_id == ids[5]
    assert store.find_run_by_key("nope") is None


def test_run_row_round_trips_with_utc_times(store):
    run_id = _run(store, audit_id="nightly", role="base", label="before")
    run = store.get_run(run_id)
    assert (run.kind, run.run_key, run.model_reference, run.probes) == ("probe", "key", "hf:org/model", ["winogender"])
    assert run.config == {"probes": ["winogender"], "seed": 1}
    from rai_audit.hashing import sha256_json

    assert run.config_hash == sha256_json(run.config)
    assert run.scorer["operator"] == ">=" and run.datasets == {"winogender": "d" * 32} and run.seed == 1
    assert (run.audit_id, run.role, run.label) == ("nightly", "base", "before")
    assert run.created_at.tzinfo is not None and run.created_at.utcoffset().total_seconds() == 0
    assert run.created_at.tzinfo == timezone.utc


def test_list_runs_newest_first_with_filters(store):
    a = _run(store, key="a", model="1" * 64, ref="hf:base", probes=["bbq", "winogender"], audit_id="x", role="base")
    b = _run(store, key="b", model="2" * 64, ref="hf:tuned", probes=["bbq"], audit_id="x", role="tuned")
    c = _run(store, key="c", model="1" * 64, ref="hf:base", probes=["bold"], kind="finetune")
    store.add_event(b, "completed")
    ids = lambda runs: [r.run_id for r in runs]  # noqa: E731
    assert ids(store.list_runs()) == [c, b, a]
    assert ids(store.list_runs(limit=2)) == [c, b]
    assert ids(store.list_runs(model="hf:base")) == [c, a]
    assert ids(store.list_runs(model="2" * 64)) == [b]
    assert ids(store.list_runs(model="1111")) == [c, a]  # model id prefix
    assert ids(store.list_runs(probe="bbq")) == [b, a]
    assert ids(store.list_runs(probe="bbq", limit=1)) == [b]
    assert ids(store.list_runs(kind="finetune")) == [c]
    assert ids(store.list_runs(audit_id="x", role="tuned")) == [b]
    assert ids(store.list_runs(status="completed")) == [b]
    assert ids(store.list_runs(status="running", probe="bbq")) == [a]
    assert store.list_runs(model="nobody") == []


def test_events_make_the_status(store):
    run_id = _run(store)
    run = store.get_run(run_id)
    assert run.status == "running" and run.finished_at is None and [e.status for e in run.events] == ["running"]
    store.add_event(run_id, "interrupted", {"reason": "SIGTERM"})
    store.add_event(run_id, "running", {"resumed": True})
    store.add_event(run_id, "completed_with_errors", {"errors": 3})
    run = store.get_run(run_id)
    assert run.status == "completed_with_errors" and run.status_detail["errors"] == 3 and "seal" in run.status_detail
    assert [e.status for e in run.events] == ["running", "interrupted", "running", "completed_with_errors"]
    assert run.finished_at == run.events[-1].at
    with pytest.raises(ValueError, match="unknown run status"):
        store.add_event(run_id, "done")
    with pytest.raises(StoreError, match="No run"):
        store.add_event("f" * 32, "completed")


# -- records, metrics, artifacts, comparisons ---------------------------------------------------

def test_records_round_trip_in_insertion_order(store):
    run_id = _run(store)
    other = _run(store, key="other")
    recs = [
        {"item_id": "b2", "cluster": "t1", "outcomes": {"correct": 1.0, "nan": math.nan},
         "responses": ["héllo ✓", "<script>"], "toxicity": [0.1, float("inf")], "nested": {"a": [1, {"b": None}]},
         "np": np.float32(0.5), "npi": np.int64(7), "arr": np.array([1, 2])},
        {"item_id": "a1", "cluster": "t1", "outcomes": {}, "error": "ScorerError: boom"},
        {"item_id": 3, "outcomes": {"correct": 0.0}},
    ]
    store.add_records(run_id, "bbq", recs)
    store.add_records(run_id, "winobias", [{"item_id": "b2", "outcomes": {"x": 1.0}}])
    store.add_records(other, "bbq", [{"item_id": "zz", "outcomes": {}}])
    got = store.records(run_id, "bbq")
    assert [r["item_id"] for r in got] == ["b2", "a1", 3]
    r0 = got[0]
    assert r0["probe"] == "bbq" and "error" not in r0
    assert math.isnan(r0["outcomes"]["nan"]) and r0["outcomes"]["correct"] == 1.0
    assert r0["toxicity"] == [0.1, math.inf] and r0["responses"] == ["héllo ✓", "<script>"]
    assert r0["nested"] == {"a": [1, {"b": None}]} and r0["np"] == 0.5 and r0["npi"] == 7 and r0["arr"] == [1, 2]
    assert got[1]["error"] == "ScorerError: boom"
    assert [r["probe"] for r in store.records(run_id)] == ["bbq", "bbq", "bbq", "winobias"]
    assert store.completed_items(run_id, "bbq") == {"b2", "a1", "3"}
    assert store.completed_items(run_id, "bold") == set()
    with pytest.raises(ValueError, match="item_id"):
        store.add_records(run_id, "bbq", [{"outcomes": {}}])


def test_metrics_round_trip(store):
    run_id = _run(store)
    rows = [
        MetricRow("bbq", "accuracy", "", 0.75, 400, 0.7, 0.8, {"ci": "cluster bootstrap", "n_boot": 1000}),
        MetricRow("bbq", "bias_score", "Age|ambig", -0.125, 40, -0.2, -0.05),
        MetricRow("bbq", "bias_score", "Age|disambig", math.nan, 0, math.nan, None),
        MetricRow("winogender", "agreement", "", 1.0, 5),
    ]
    store.add_metrics(run_id, rows)
    got = store.metrics(run_id)
    assert got[0] == rows[0] and got[1] == rows[1] and got[3] == rows[3]
    assert math.isnan(got[2].value) and got[2].n == 0 and got[2].ci_low is None and got[2].ci_high is None
    assert [m.probe for m in store.metrics(run_id, "winogender")] == ["winogender"]


def test_artifacts_and_comparisons(store):
    a, b = _run(store, key="a"), _run(store, key="b")
    store.add_artifact(a, "model", "model", Path("/out/tuned"), "c" * 64, {"format": "safetensors"})
    store.add_artifact(a, "report.pdf", "report", "/out/r.pdf")
    store.add_artifact(b, "manifest.json", "manifest")
    arts = store.artifacts(a)
    assert [(x.name, x.kind, x.path) for x in arts] == [("model", "model", "/out/tuned"), ("report.pdf", "report", "/out/r.pdf")]
    assert arts[0].meta == {"format": "safetensors"} and arts[1].sha256 is None and arts[1].meta == {}
    assert [x.name for x in store.artifacts(kind="manifest")] == ["manifest.json"]

    c1 = store.add_comparison(a, b, {"test": "mcnemar"}, {"delta": -0.1})
    c2 = store.add_comparison(b, a, {"test": "mcnemar"}, {"delta": 0.1}, comparison_id="fixed-id")
    assert store.add_comparison(b, a, {}, {"delta": 99}, comparison_id="fixed-id") == "fixed-id"
    assert store.get_comparison("fixed-id").result == {"delta": 0.1}
    assert store.get_comparison("latest").comparison_id == c2
    got = store.get_comparison(c1[:10])
    assert (got.run_a, got.run_b, got.config, got.result) == (a, b, {"test": "mcnemar"}, {"delta": -0.1})
    assert [c.comparison_id for c in store.list_comparisons()] == [c2, c1]
    assert [c.comparison_id for c in store.list_comparisons(run_id=a, limit=1)] == [c2]
    with pytest.raises(StoreError, match="No comparison"):
        store.get_comparison("nothing-like-this")
    with pytest.raises(sa.exc.IntegrityError):  # foreign key: comparisons reference stored runs
        store.add_comparison(a, "0" * 32, {}, {})


def test_items_and_datasets(store):
    info = DatasetInfo(name="bbq", source="/data/bbq", revision="v1", license="CC-BY-4.0", files={"Age.jsonl": "1" * 64})
    store.add_dataset(info)
    store.add_dataset(info)
    store.add_items(info.dataset_id, "bbq", [Item("q1", {"question": "?"}, "ctx1"), Item("q2", {"question": "!"})])
    store.add_items(info.dataset_id, "bbq", [Item("q1", {"question": "changed"})])
    assert store.get_dataset(info.dataset_id) == info
    items = store.items("bbq", info.dataset_id)
    assert [(i.id, i.data, i.cluster) for i in items] == [("q1", {"question": "?"}, "ctx1"), ("q2", {"question": "!"}, None)]


def test_store_pickles_by_url(tmp_path):
    with Store.open(tmp_path / "p.sqlite") as s:
        run_id = _run(s)
        clone = pickle.loads(pickle.dumps(s))
        try:
            assert clone.get_run(run_id).run_id == run_id
        finally:
            clone.close()


# -- audit locks --------------------------------------------------------------------------------

def test_audit_lock_refuses_a_second_holder_and_wait_works(store):
    with store.audit_lock("nightly"):
        with pytest.raises(StoreError, match=r"Audit 'nightly' is already running .*--wait") as err:
            with store.audit_lock("nightly"):
                pass
        assert str(os.getpid()) in str(err.value)
        with store.audit_lock("other-audit"):  # locks are per audit
            pass
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="still running after waiting"):
            with store.audit_lock("nightly", wait=True, timeout=0.5, poll=0.05):
                pass
        assert time.monotonic() - t0 >= 0.45
    with store.audit_lock("nightly"):  # released on exit
        pass

    order = []
    release = threading.Event()

    def holder():
        with store.audit_lock("queued"):
            order.append("first in")
            release.wait(5)
            order.append("first out")

    th = threading.Thread(target=holder)
    th.start()
    while not order:
        time.sleep(0.01)
    threading.Timer(0.3, release.set).start()
    with store.audit_lock("queued", wait=True, timeout=10, poll=0.05):
        order.append("second in")
    th.join()
    assert order == ["first in", "first out", "second in"]


def test_audit_lock_across_processes_survives_kill_9(db_url, tmp_path):
    Store.open(db_url).close()
    child = _script(tmp_path, f"""
        import sys, time
        from rai_audit.store import Store
        s = Store.open({db_url!r})
        with s.audit_lock("nightly"):
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, str(child)], stdout=subprocess.PIPE, env=_child_env(), text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with Store.open(db_url) as s:
            with pytest.raises(StoreError, match=f"already running .*:{proc.pid}"):
                with s.audit_lock("nightly"):
                    pass
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            with s.audit_lock("nightly", wait=True, timeout=20, poll=0.05):
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- concurrency --------------------------------------------------------------------------------

def test_concurrent_readers_while_a_thread_writes(store):
    run_id = _run(store)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def writer():
        try:
            for chunk in range(40):
                with store.transaction():
                    keys = [f"w{chunk}-{i}" for i in range(50)]
                    store.add_responses([_response(k) for k in keys])
                    store.add_records(run_id, "p", [{"item_id": k, "outcomes": {"x": 1.0}} for k in keys])
                    store.add_metrics(run_id, [MetricRow("p", "m", str(chunk), 1.0, 50)])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            stop.set()

    def reader():
        try:
            while not stop.is_set():
                n = len(store.records(run_id))
                assert n % 50 == 0  # whole chunks only: a transaction is all or nothing
                store.list_runs()
                store.get_responses([f"w0-{i}" for i in range(50)])
                store.metrics(run_id)
                reads[0] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert reads[0] > 0
    assert len(store.records(run_id)) == 2000 and len(store.metrics(run_id)) == 40


def test_processes_writing_the_same_keys_while_others_read(db_url, tmp_path):
    """Fresh store: several processes open it at once (migration race), write the same cache keys
    in many small transactions, and one reads all the while; nobody fails."""
    writer = _script(tmp_path, f"""
        import sys
        from rai_audit.store import Store
        s = Store.open({db_url!r})
        run_id = s.create_run(kind="probe", run_key="proc" + sys.argv[1], model_id=None, model_reference=None,
                              probes=["p"], config={{}}, provenance={{}}, scorer=None, datasets={{}}, seed=0)
        for chunk in range(20):
            keys = [f"k{{chunk}}-{{i}}" for i in range(25)]
            with s.transaction():
                s.add_responses([{{"key": k, "model_id": "m", "kind": "generate", "request": {{}},
                                  "result": {{"texts": ["t" + sys.argv[1]]}}}} for k in keys])
                s.add_scores([{{"key": k, "scorer_id": "s", "text_sha256": "x", "scores": {{"tox": 0.5}},
                               "truncated": False, "error": None}} for k in keys])
                s.add_records(run_id, "p", [{{"item_id": k}} for k in keys])
            s.add_event(run_id, "running", {{"chunk": chunk}})
        s.add_event(run_id, "completed")
        print("ok", flush=True)
    """)
    reader = _script(tmp_path, f"""
        import time
        from rai_audit.store import Store
        s = Store.open({db_url!r})
        t0 = time.time(); n = 0
        while time.time() - t0 < 2:
            s.list_runs(); s.get_responses([f"k0-{{i}}" for i in range(25)])
            for r in s.list_runs():
                s.records(r.run_id)
            n += 1
        print("ok", n, flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, str(writer), str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=_child_env(), text=True) for i in range(2)]
    procs.append(subprocess.Popen([sys.executable, str(reader)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=_child_env(), text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.startswith("ok"), (out, err)
        assert "database is locked" not in err
    with Store.open(db_url) as s:
        keys = [f"k{c}-{i}" for c in range(20) for i in range(25)]
        assert len(s.get_responses(keys)) == 500 and len(s.get_scores(keys)) == 500
        runs = s.list_runs()
        assert len(runs) == 2 and {r.status for r in runs} == {"completed"}
        assert all(len(s.records(r.run_id)) == 500 for r in runs)


def test_disk_full_is_a_store_error_and_commits_nothing(tmp_path):
    """SQLite's max_page_count makes the database "full" like a full disk (SQLITE_FULL)."""
    with Store.open(tmp_path / "full.sqlite") as s:
        run_id = _run(s)
        with s.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

        @sa.event.listens_for(s.engine, "connect")
        def _cap(dbapi_conn, _record):
            dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 20}")

        s.engine.dispose()  # new connections get the cap
        big = [{"item_id": str(i), "text": "x" * 2000} for i in range(200)]  # ~100 pages
        with pytest.raises(StoreError, match="ran out of disk space"):
            with s.transaction():
                s.add_records(run_id, "p", big[:5])
                s.add_records(run_id, "p", big[5:])
        assert s.records(run_id) == []
        with pytest.raises(StoreError, match="ran out of disk space"):
            s.add_responses([_response(f"k{i}", float(i)) | {"request": {"blob": "y" * 4000}} for i in range(100)])
        assert s.get_responses(["k0"]) == {}


def test_in_memory_url_gets_a_private_file_usable_from_threads():
    with Store.open("sqlite://") as s:
        path = Path(sa.make_url(s.url).database)
        assert path.is_file()
        run_id = _run(s)
        seen = []
        th = threading.Thread(target=lambda: seen.append(s.get_run("latest").run_id))
        th.start()
        th.join()
        assert seen == [run_id]
    assert not path.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_uses_fresh_connections(tmp_path):
    """A child forked from a process with an open store does not reuse the parent's pooled
    connection. The fork happens in a fresh interpreter that imports only the store: forking the
    test process itself is unsafe once JAX (multithreaded) is imported, as it is in a pytest-xdist
    worker that ran the finetune tests."""
    db = tmp_path / "fork.sqlite"
    script = _script(tmp_path, f"""
        import os
        import sys

        from rai_audit.store import Store


        def _response(key):
            return {_response("KEY")!r} | {{"key": key}}


        with Store.open({str(db)!r}) as s:
            s.add_responses([_response("parent")])
            assert s.engine.pool.checkedin() == 1  # the pool now holds a connection
            pid = os.fork()
            if pid == 0:  # child: must not reuse the parent's connection
                code = 1
                try:
                    assert s.engine.pool.checkedin() == 0  # the parent's pooled connection was dropped
                    s.add_responses([_response("child")])
                    code = 0 if set(s.get_responses(["parent", "child"])) == {{"parent", "child"}} else 1
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, f"child exit {{os.waitstatus_to_exitcode(status)}}"
            assert set(s.get_responses(["parent", "child"])) == {{"parent", "child"}}
        assert "jax" not in sys.modules  # the fork was made without JAX's threads
        print("ok")
    """)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=_child_env())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    with Store.open(db) as s:  # what the child wrote is in the file
        assert set(s.get_responses(["parent", "child"])) == {"parent", "child"}


@needs_pg
@pytest.mark.postgres
def test_wrong_password_or_missing_database_is_a_store_error():
    base = sa.make_url(resolve_url(PG_URL))
    with pytest.raises(StoreError, match="refused the results store") as err:
        Store.open(base.set(password="wrong-pw-123").render_as_string(hide_password=False))
    assert "wrong-pw-123" not in str(err.value)
    with pytest.raises(StoreError, match="database name .* and that the database exists"):
        Store.open(base.set(database="rai_no_such_db").render_as_string(hide_password=False))


def test_verify_finds_tampering_without_a_report(store, tmp_path):
    """Completed runs and saved comparisons are sealed; `verify_store` recomputes the seals and
    checks the triggers, so a row changed behind the triggers' back is found."""
    from rai_audit.store.integrity import verify_store

    run_id = _fill_every_table(store)
    store.add_event(run_id, "completed")
    ft = store.create_run(kind="finetune", run_key="ft", model_id=None, model_reference="default", probes=[],
                          config={}, provenance={}, scorer=None, datasets={}, seed=0)
    store.add_metrics(ft, [MetricRow("finetune", "loss", "step=1", 2.5, 512)])
    store.add_event(ft, "completed")
    assert store.get_comparison("latest").result_sha256
    clean = verify_store(store)
    assert clean.ok and clean.runs_checked == 2 and clean.comparisons_checked == 1, clean.format_text()
    # tamper: drop the guards (as a hand edit would), rewrite a record and a comparison
    from rai_audit.store import ddl

    with store.engine.begin() as conn:
        for tbl in ("records", "comparisons", "metrics"):
            for stmt in ddl.drop_triggers_sql(store.dialect, tbl):
                conn.exec_driver_sql(stmt)
        conn.execute(sa.update(metadata.tables["metrics"]).where(metadata.tables["metrics"].c.run_id == ft).values(value=0.1))
        conn.execute(sa.update(metadata.tables["records"]).values(record={"item_id": "i1", "outcomes": {"correct": 0.0}}))
        conn.execute(sa.update(metadata.tables["comparisons"]).values(result={"delta": 9.0}))
    bad = verify_store(store)
    text = bad.format_text()
    assert not bad.ok and "STORE INTEGRITY FAILED" in text
    assert f"run {run_id}: its records changed" in text and "comparison" in text and "trigger(s) missing" in text
    assert f"run {ft}: its metrics changed" in text  # finetune runs are sealed too (their losses)
