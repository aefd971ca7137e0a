"""`rai-audit export` through the CLI (in-process `rai_audit.cli.main`, which maps errors to exit
codes as the console script does) on a real SQLite store with two small runs and their saved
comparison; every output is read back with pandas / json and checked against the store."""

from __future__ import annotations

import json
import math
import sys

import pandas as pd
import pytest

import probes
from rai_audit.backend import ModelInfo
from rai_audit.cli import main
from rai_audit.comparison import compare_runs, load_comparison, save_comparison
from rai_audit.config import parse_config
from rai_audit.probe import DatasetInfo, Item
from rai_audit.requests import LoglikResult, cache_key
from rai_audit.runner import run_probe_suite
from rai_audit.store import Store
from tests.fakes import FAKE_MODEL, FakeBackend, FakeMC, FakeScorer

FORMULA_ID = "=HYPERLINK(\"http://x\")"
TUNED = ModelInfo(model_id="e" * 64, reference="fake:tuned", kind="dir", architecture="Fake")


class EvilMC(FakeMC):
    """FakeMC whose first item id and one subgroup label would run as spreadsheet formulas."""

    name = "evil_mc"

    def load(self):
        _, items = super().load()
        items = [Item(id=FORMULA_ID if i == 0 else it.id, cluster=it.cluster,
                      data={**it.data, "group": "@SUM(A1)" if i == 1 else it.data["group"]}) for i, it in enumerate(items)]
        return DatasetInfo(name="evil_mc", source="memory", files={"x": "1" * 64}), items


class FlipBackend(FakeBackend):
    """The tuned model: the fake answers with the preference flipped on every third item."""

    def loglikelihood(self, requests):
        out = super().loglikelihood(requests)
        number = [int("".join(ch for ch in r.context if ch.isdigit()) or 0) for r in requests]
        return [LoglikResult(-5 - o.logprob, o.n_tokens, o.is_greedy) if n % 3 == 0 else o for n, o in zip(number, out)]


def same(got, want) -> bool:
    """Equal numbers, or both missing (None / NaN)."""
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) for x in (got, want)]
    return all(missing) if any(missing) else got == pytest.approx(want)


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(probes.REGISTRY, "fake_mc", "tests.fakes:FakeMC")
    monkeypatch.setitem(probes.REGISTRY, "fake_gen", "tests.fakes:FakeGen")
    monkeypatch.setitem(probes.REGISTRY, "evil_mc", "tests.test_export:EvilMC")


@pytest.fixture
def made(tmp_path, _register):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = Store.open(url)
    cfg = parse_config({"probes": ["evil_mc", "fake_gen"], "runtime": {"bootstrap": 100}, "seed": 3})
    a = run_probe_suite(cfg, model_ref="fake:model", store=store, model_info=FAKE_MODEL,
                        backend_loader=lambda i: FakeBackend(fail_on="Question q005"), scorer=FakeScorer()).run
    b = run_probe_suite(cfg, model_ref="fake:tuned", store=store, model_info=TUNED,
                        backend_loader=lambda i: FlipBackend(info=TUNED), scorer=FakeScorer()).run
    comp = compare_runs(store, a.run_id, b.run_id, n_boot=100, seed=0)
    save_comparison(store, comp)
    return store, url, a, b, load_comparison(store, comp.comparison_id)


def export(capsys, *args):
    code = main(["export", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_as_csv_parquet_and_jsonl_match_the_store(made, tmp_path, capsys):
    store, url, a, _, _ = made
    recs = {(r["probe"], r["item_id"]): r for r in store.records(a.run_id)}
    assert any(r.get("error") for r in recs.values())  # q005 failed: an error row
    for fmt, suffix, read in (("csv", ".csv", pd.read_csv), ("parquet", ".parquet", pd.read_parquet),
                              ("jsonl", ".jsonl", lambda p: pd.read_json(p, lines=True, dtype={"item_id": str}))):
        code, out, err = export(capsys, f"run:{a.run_id[:10]}", "--format", fmt, "--output", str(tmp_path / fmt), "--db", url)
        assert code == 0, err
        path = tmp_path / fmt / f"run-{a.run_id[:12]}.items{suffix}"
        assert out.split() == [fmt, str(path)]
        df = read(path)
        assert len(df) == len(recs) and list(df.columns[:6]) == ["run_id", "model_reference", "probe", "item_id", "cluster", "error"]
        for row in df.to_dict("records"):
            item_id = row["item_id"]
            if fmt == "csv" and item_id.startswith("'"):
                assert item_id == "'" + FORMULA_ID  # formula guard, CSV only
                item_id = FORMULA_ID
            rec = recs[(row["probe"], item_id)]
            assert row["run_id"] == a.run_id and row["model_reference"] == "fake:model"
            if rec.get("error"):
                assert row["error"] == rec["error"] and math.isnan(row["outcome.correct"])  # never a 0
                continue
            assert not isinstance(row["error"], str)
            for key, value in rec["outcomes"].items():
                assert row[f"outcome.{key}"] == pytest.approx(value)
            for key, value in (rec.get("subgroups") or {}).items():
                assert row[f"subgroup.{key}"] == ("'" + value if fmt == "csv" and value.startswith("@") else value)
        if fmt == "csv":
            assert "'" + FORMULA_ID in set(df["item_id"]) and "'@SUM(A1)" in set(df["subgroup.group"])
        else:
            assert FORMULA_ID in set(df["item_id"]) and "@SUM(A1)" in set(df["subgroup.group"])


def test_csv_guards_every_formula_start():
    from rai_audit.exports.csv_table import guard_cell

    for bad in ("=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert guard_cell(bad) == "'" + bad
    for fine in ("plain", "a=b", "", -2.5, 3, None):
        assert guard_cell(fine) == fine


def test_comparison_tables_pair_items_and_carry_the_diff_rows(made, tmp_path, capsys):
    store, url, a, b, comp = made
    code, out, err = export(capsys, comp.comparison_id[:12], "-f", "jsonl", "-o", str(tmp_path / "cmp.jsonl"), "--db", url)
    assert code == 0, err
    items = pd.read_json(tmp_path / "cmp.jsonl", lines=True, dtype={"item_id": str})
    diff = pd.read_json(tmp_path / "cmp.diff.jsonl", lines=True)
    assert out.split() == ["jsonl", str(tmp_path / "cmp.jsonl"), "jsonl", str(tmp_path / "cmp.diff.jsonl")]
    ra = {(r["probe"], r["item_id"]): r for r in store.records(a.run_id)}
    rb = {(r["probe"], r["item_id"]): r for r in store.records(b.run_id)}
    assert len(items) == len(ra) == len(rb)
    assert {c for c in items.columns if c.startswith("a_")} >= {"a_run_id", "a_error", "a_outcome.correct"}
    for row in items.to_dict("records"):
        key = (row["probe"], row["item_id"])
        assert row["a_run_id"] == a.run_id and row["b_run_id"] == b.run_id and row["comparison_id"] == comp.comparison_id
        for side, recs in (("a", ra), ("b", rb)):
            rec = recs[key]
            if rec.get("error"):
                assert row[f"{side}_error"] == rec["error"] and math.isnan(row[f"{side}_outcome.correct"])
            else:
                for k, v in rec["outcomes"].items():
                    assert row[f"{side}_outcome.{k}"] == pytest.approx(v)
    flipped = items[(items["probe"] == "evil_mc") & (items["a_outcome.correct"] != items["b_outcome.correct"])
                    & items["a_error"].isna()]
    assert len(flipped) > 0  # the tuned fake really differs
    assert len(diff) == len(comp.rows) + sum(len(p.clean_rows) for p in comp.probes)
    for got, want in zip(diff.to_dict("records"), comp.rows):
        assert (got["probe"], got["metric"], got["subgroup"], got["source"], got["subset"]) == \
            (want.probe, want.metric, want.subgroup, want.source, "all")
        for field in ("n", "value_a", "value_b", "diff", "ci_low", "ci_high", "p_value", "p_adjusted", "mde"):
            assert same(got[field], getattr(want, field)), (field, got, want)


def test_comparison_as_csv_writes_items_and_diff(made, tmp_path, capsys):
    _, url, _, _, comp = made
    code, out, err = export(capsys, f"comparison:{comp.comparison_id[:8]}", "-f", "csv", "-o", str(tmp_path / "o"), "--db", url)
    assert code == 0, err
    stem = f"comparison-{comp.comparison_id[:12]}"
    items = pd.read_csv(tmp_path / "o" / f"{stem}.items.csv")
    diff = pd.read_csv(tmp_path / "o" / f"{stem}.diff.csv")
    assert "'" + FORMULA_ID in set(items["item_id"])
    headline = diff[(diff["probe"] == "evil_mc") & (diff["metric"] == "accuracy") & diff["subgroup"].isna() & (diff["subset"] == "all")]
    want = next(r for r in comp.rows if r.probe == "evil_mc" and r.metric == "accuracy" and r.subgroup == "" and r.source == "metric")
    assert float(headline["diff"].iloc[0]) == pytest.approx(want.diff)


def test_lm_eval_results_and_samples(made, tmp_path, capsys):
    store, url, a, _, _ = made
    code, out, err = export(capsys, f"run:{a.run_id}", "--format", "lm-eval", "--output", str(tmp_path / "lm"), "--db", url)
    assert code == 0, err
    folder = tmp_path / "lm" / "fake__model"  # lm-eval's sanitised model name
    [results_path] = folder.glob("results_*.json")
    doc = json.loads(results_path.read_text(encoding="utf-8"))
    for key in ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "git_hash", "date",
                "model_name", "model_name_sanitized"):
        assert key in doc, key
    metrics = {(m.probe, m.name): m for m in store.metrics(a.run_id) if m.subgroup == ""}
    assert doc["results"]["evil_mc"]["accuracy,none"] == pytest.approx(metrics[("evil_mc", "accuracy")].value)
    assert doc["results"]["evil_mc"]["accuracy_stderr,none"] == "N/A"
    assert doc["results"]["fake_gen"]["expected_max_toxicity,none"] == pytest.approx(metrics[("fake_gen", "expected_max_toxicity")].value)
    assert doc["n-samples"]["evil_mc"] == {"original": 40, "effective": 40}
    assert doc["config"]["model"] == "fake:model" and doc["config"]["random_seed"] == 3 and doc["config"]["bootstrap_iters"] == 100
    assert doc["configs"]["evil_mc"]["output_type"] == "multiple_choice" and doc["configs"]["fake_gen"]["output_type"] == "generate_until"
    assert {m["subgroup"] for m in doc["rai_audit"]["metrics"] if m["probe"] == "evil_mc"} >= {"", "group=g1"}
    date = results_path.stem.removeprefix("results_")
    lines = [json.loads(x) for x in (folder / f"samples_evil_mc_{date}.jsonl").read_text(encoding="utf-8").splitlines()]
    recs = store.records(a.run_id, "evil_mc")
    assert [s["doc_id"] for s in lines] == list(range(len(recs)))
    for sample, rec in zip(lines, recs):
        assert set(sample) >= {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                               "doc_hash", "prompt_hash", "target_hash"}
        assert sample["rai_audit"]["item_id"] == rec["item_id"]
        if rec.get("error"):
            assert sample["metrics"] == [] and "correct" not in sample and sample["rai_audit"]["error"] == rec["error"]
            continue
        assert sample["metrics"] == ["correct"] and sample["correct"] == rec["outcomes"]["correct"]
        assert sample["target"] == sample["doc"]["gold"]
        args = sample["arguments"]
        assert list(args) == ["gen_args_0", "gen_args_1"] and args["gen_args_1"]["arg_1"] == " B"
        from rai_audit.requests import LoglikRequest

        key = cache_key(FAKE_MODEL.model_id, LoglikRequest(args["gen_args_0"]["arg_0"], args["gen_args_0"]["arg_1"]))
        cached = store.get_responses([key])[key]["result"]
        assert sample["resps"][0] == [[str(cached["logprob"]), str(cached["is_greedy"])]]
    gen = [json.loads(x) for x in (folder / f"samples_fake_gen_{date}.jsonl").read_text(encoding="utf-8").splitlines()]
    first = store.records(a.run_id, "fake_gen")[0]
    assert gen[0]["resps"] == [first["responses"]] and gen[0]["arguments"]["gen_args_0"]["arg_0"] == first["prompt"]


def test_lm_eval_for_a_comparison_writes_both_runs(made, tmp_path, capsys):
    _, url, a, b, comp = made
    code, out, err = export(capsys, f"comparison:{comp.comparison_id}", "-f", "lm-eval", "-o", str(tmp_path / "lm"), "--db", url)
    assert code == 0, err
    assert len(list((tmp_path / "lm" / "fake__model").glob("results_*.json"))) == 1
    [tuned] = (tmp_path / "lm" / "fake__tuned").glob("results_*.json")
    assert json.loads(tuned.read_text(encoding="utf-8"))["rai_audit"]["run_id"] == b.run_id


def test_bad_inputs_exit_2_and_write_nothing(made, tmp_path, capsys, monkeypatch):
    store, url, a, _, comp = made
    out_dir = tmp_path / "never"
    cases = [
        (["no-such-id", "-f", "csv"], "No run or comparison matches 'no-such-id'"),
        (["latest", "-f", "csv"], "matches both run"),  # a run and a comparison: say which
        (["run:", "-f", "csv"], "names no id"),
        ([f"run:{a.run_id}", "-f", "xlsx"], "Unknown export format 'xlsx'"),
        ([f"comparison:{a.run_id}", "-f", "csv"], "No comparison matches"),
    ]
    for args, message in cases:
        code, _, err = export(capsys, *args, "-o", str(out_dir), "--db", url)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
    assert not out_dir.exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = export(capsys, f"run:{a.run_id}", "-f", "csv", "-o", str(blocker / "sub"), "--db", url)
    assert code == 2 and "Cannot write the export to" in err
    code, _, err = export(capsys, f"run:{a.run_id}", "-f", "lm-eval", "-o", str(blocker / "sub"), "--db", url)
    assert code == 2 and "Cannot write the export to" in err
    code, _, err = export(capsys, f"run:{a.run_id}", "-f", "csv", "--db", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "No results store" in err
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    code, _, err = export(capsys, f"run:{a.run_id}", "-f", "parquet", "-o", str(out_dir), "--db", url)
    assert code == 2 and "pip install 'rai-audit[parquet]'" in err and not out_dir.exists()
    assert len(store.list_runs()) == 2 and len(store.list_comparisons()) == 1  # export only reads


def test_export_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        from rai_audit.cli import app

        app(["export", "--help"], prog_name="rai-audit")
    assert e.value.code == 0
    assert "Example: rai-audit export" in capsys.readouterr().out
