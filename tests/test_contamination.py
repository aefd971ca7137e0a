"""Train/test contamination (issue 14 §2): the n-gram fingerprint against hand-worked examples,
and the whole path a user takes: a probe run on a model with training data records exactly the
overlapping items, the comparison shows them and its clean-only rows, and the gate fails on them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rai_audit.contamination import TrainingFingerprint, check_items, load_training_data
from rai_audit.contamination.fingerprint import FINGERPRINT_NAME
from rai_audit.contamination.ngrams import ngram_hashes, words
from rai_audit.errors import DataError
from tests.tiny_models import tiny_model_dir

FOX = "The quick brown fox jumps over the lazy dog near the river bank at noon."


def test_words_normalise_case_width_and_punctuation():
    assert words("Ｔｈｅ  QUICK, brown—fox's") == ["the", "quick", "brown", "fox", "s"]


def test_ngram_hashes_count_distinct_windows():
    toks = "a b c a b c".split()
    assert ngram_hashes(toks, 3).size == 3  # abc, bca, cab (abc twice)
    assert ngram_hashes(toks, 7).size == 0


def test_fingerprint_keeps_both_sizes_and_counts_documents():
    fp = TrainingFingerprint.build([FOX, "hello world"], n=13, short_n=8)
    assert fp.sizes == [13, 8]
    # FOX has 15 words: 15-13+1 = 3 13-grams and 15-8+1 = 8 8-grams; "hello world" has none.
    assert fp.summary()["ngrams"] == {"13": 3, "8": 8} and fp.documents == 2


def test_check_items_hand_worked():
    fp = TrainingFingerprint.build([FOX])
    result = check_items([
        ("long-hit", ["the QUICK brown fox jumps over the lazy dog near the river bank!"]),  # 13 words: a 13-gram
        ("short-hit", ["quick brown fox jumps over the lazy dog"]),  # 8 words: checked with 8-grams
        ("miss", ["an unrelated sentence with quite a few words in it today"]),
        ("too-short", ["the quick brown fox"]),  # 4 words: cannot be checked
        ("second-text", ["no overlap here at all", "brown fox jumps over the lazy dog near"]),
    ], fp)
    assert result.overlapping == ["long-hit", "second-text", "short-hit"]
    assert result.unchecked == ["too-short"]
    assert result.checked == 4 and result.fraction == pytest.approx(3 / 4)
    assert result.examples[0]["ngram"] == "the quick brown fox jumps over the lazy dog near the river bank"


def test_save_load_roundtrip_and_refuse_other_normalisation(tmp_path):
    fp = TrainingFingerprint.build([FOX], source="unit")
    path = tmp_path / "fp.npz"
    assert fp.save(path) == fp.fingerprint_id
    back = TrainingFingerprint.load(path)
    assert back.fingerprint_id == fp.fingerprint_id and back.source == "unit"
    meta = json.dumps({"normalization": "other-v0", "documents": 1}).encode()
    np.savez(tmp_path / "old.npz", meta=np.frombuffer(meta, dtype=np.uint8), n13=fp.hashes[13])
    with pytest.raises(DataError, match="normalisation 'other-v0'"):
        TrainingFingerprint.load(tmp_path / "old.npz")


def test_load_training_data_formats(tmp_path):
    half = FOX.index(" over ")
    (tmp_path / "t.jsonl").write_text(json.dumps({"inputs": FOX[:half], "targets": FOX[half:]}) + "\n\n")
    (tmp_path / "t.json").write_text(json.dumps([{"messages": [{"content": FOX}]}]))
    (tmp_path / "t.txt").write_text(FOX + "\n\n")
    fps = [load_training_data(tmp_path / f) for f in ("t.jsonl", "t.json", "t.txt")]
    # One document each (blank lines are no documents), and every string of a JSON record is in it.
    assert [fp.documents for fp in fps] == [1, 1, 1]
    assert fps[1].fingerprint_id == fps[2].fingerprint_id
    assert check_items([("x", [FOX])], fps[0]).overlapping == ["x"]
    with pytest.raises(DataError, match="does not exist"):
        load_training_data(tmp_path / "nope.jsonl")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="line 1"):
        load_training_data(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="no training_fingerprint.npz"):
        load_training_data(tmp_path)


# ------------------------------------------------------------------------ through the CLI


def rai(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "rai_audit", "--quiet", *args], capture_output=True, text=True,
                          timeout=timeout)


def _civil_items(shared_data: Path, limit: int):
    """The civil_comments items a `--limit` run evaluates, the way the runner picks them."""
    from rai_audit.runner import prepare_jobs

    jobs, _ = prepare_jobs([("civil_comments", {})], shared_data, limit=limit, seed=1234)
    job = jobs[0]
    return job, [(it.id, job.probe.content_texts(it)) for it in job.items]


def test_fifty_planted_items_are_flagged_exactly_and_fail_the_gate(tmp_path, shared_data):
    job, items = _civil_items(shared_data, 80)
    long_ids = [i for i, texts in items if len(words(texts[0])) >= 13]
    assert len(long_ids) >= 60, "the sample needs enough long comments to plant 50"
    planted = set(long_ids[:50])
    by_id = dict(items)
    train = tmp_path / "train.jsonl"
    with train.open("w") as f:  # Flan-style: the comment inside an instruction, with the answer
        for iid in sorted(planted):
            f.write(json.dumps({"inputs": f"Is this comment toxic? Comment: {by_id[iid][0]}\nAnswer yes or no.",
                                "targets": "no"}) + "\n")
        for k in range(30):
            f.write(json.dumps({"inputs": f"Add {k} and {k + 1}.", "targets": str(2 * k + 1)}) + "\n")
    clean = tmp_path / "clean.jsonl"
    shutil.copy(Path(__file__).resolve().parents[1] / "rai_audit/assets/demo_mixture/general_qa.jsonl", clean)

    model = str(tiny_model_dir("llama"))
    db = str(tmp_path / "s.sqlite")
    common = ["--probe", "civil_comments", "--limit", "80", "--bootstrap", "50", "--db", db, "--data-dir", str(shared_data)]
    assert rai("probe", "--model", model, *common).returncode == 0  # base: no training data
    r = rai("probe", "--model", model, "--training-data", str(train), "--role", "tuned", *common)
    assert r.returncode == 0, r.stderr
    r = rai("probe", "--model", model, "--training-data", str(clean), *common)
    assert r.returncode == 0, r.stderr

    from rai_audit.store import Store

    with Store.open(db) as s:
        runs = sorted(s.list_runs(), key=lambda run: run.created_at)
        base, tuned, clean_run = runs
        contam = tuned.provenance["contamination"]
        found = contam["probes"]["civil_comments"]
        assert set(found["overlapping"]) == planted  # exactly the 50, nothing else
        assert contam["fingerprint"]["documents"] == 80
        assert [a.kind for a in s.artifacts(tuned.run_id)] == ["training_fingerprint"]
        assert clean_run.provenance["contamination"]["probes"]["civil_comments"]["overlapping"] == []
        assert "contamination" not in base.provenance
        assert tuned.run_key != clean_run.run_key != base.run_key  # the fingerprint is part of the key

    r = rai("compare", base.run_id, tuned.run_id, "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    comp = json.loads(r.stdout)
    probe = comp["probes"][0]
    assert sorted(probe["contamination"]["b"]["overlapping"]) == sorted(planted)
    assert probe["clean_rows"] and all(row["n"] <= 30 for row in probe["clean_rows"])  # 80 - 50 planted
    full = {(row["metric"], row["subgroup"]): row["n"] for row in probe["rows"]}
    assert full[("accuracy", "")] == 80

    r = rai("compare", base.run_id, tuned.run_id, "--db", db)  # what a person reads
    assert r.returncode == 0, r.stderr
    assert "contaminated 50 of 77 checked items (64.9%) overlap run B's training data" in r.stdout, r.stdout
    assert "clean-only   auc over 27 clean items" in r.stdout, r.stdout

    r = rai("gate", comp["comparison_id"], "--db", db)
    assert r.returncode == 1, r.stdout + r.stderr  # 50/80 overlap > 1% under the default policy
    assert "civil_comments: 50 of 77 checked items (64.9%) overlap run B's training data; 3 too short to check; limit 1.0%" in r.stdout, r.stdout


def test_exported_model_carries_its_fingerprint(tmp_path, shared_data):
    model = tmp_path / "tuned"
    shutil.copytree(tiny_model_dir("llama"), model)
    job, items = _civil_items(shared_data, 12)
    TrainingFingerprint.build([" ".join(texts) for _, texts in items[:3]]).save(model / FINGERPRINT_NAME)
    db = str(tmp_path / "s.sqlite")
    r = rai("probe", "--model", str(model), "--probe", "civil_comments", "--limit", "12", "--bootstrap", "20",
            "--db", db, "--data-dir", str(shared_data))
    assert r.returncode == 0, r.stderr
    from rai_audit.store import Store

    with Store.open(db) as s:
        (run,) = s.list_runs()
        found = run.provenance["contamination"]["probes"]["civil_comments"]
        expected = {i for i, texts in items[:3] if len(words(texts[0])) >= 8}
        assert set(found["overlapping"]) == expected


def test_bad_training_data_exits_2_and_leaves_the_store(tmp_path, shared_data):
    from tests.test_hardening import table_counts

    db = str(tmp_path / "s.sqlite")
    model = str(tiny_model_dir("llama"))
    args = ["--model", model, "--probe", "crows_pairs", "--limit", "6", "--bootstrap", "20", "--db", db,
            "--data-dir", str(shared_data)]
    assert rai("probe", *args).returncode == 0
    before = table_counts(db)
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    for path in (tmp_path / "missing.jsonl", tmp_path / "bad.jsonl"):
        r = rai("probe", *args, "--training-data", str(path))
        assert r.returncode == 2, r.stderr
        assert str(path) in r.stderr and "Traceback" not in r.stderr
    assert table_counts(db) == before


def _comparison(fraction_overlap: tuple[int, int] | None):
    from rai_audit.comparison import Comparison, ProbeComparison

    contamination = {}
    if fraction_overlap is not None:
        over, checked = fraction_overlap
        contamination = {"b": {"fingerprint_id": "f", "checked": checked, "overlapping": [f"i{k}" for k in range(over)],
                               "unchecked": [], "examples": [], "fraction": over / checked}}
    probe = ProbeComparison(probe="winogender", title="", citation="", metric_specs=[], n_pairs=0, errors_a=0,
                            errors_b=0, rows=[], flips=[], flip_counts={}, confounders={}, worst_items=[],
                            contamination=contamination)
    return Comparison(comparison_id="c", run_a="a", run_b="b", created_at="", settings={}, probes=[probe])


@pytest.mark.parametrize("overlap, verdict", [((1, 200), "pass"), ((2, 200), "pass"), ((3, 200), "fail"), (None, None)])
def test_gate_limit_is_a_share_of_checked_items(overlap, verdict):
    from rai_audit.gate import evaluate_gate

    rule = {"probe": "*", "metric": "*", "max_abs_change": 0.05}
    result = evaluate_gate({"max_contamination": 0.01, "rules": [rule]}, _comparison(overlap))
    rows = [r for r in result.rows if r.source == "contamination"]
    assert [r.verdict for r in rows] == ([verdict] if verdict else [])  # 2/200 = 1% is at the limit: a pass
    assert result.verdict == (verdict or "pass")


def test_policies_without_the_field_keep_their_hash():
    from rai_audit.gate import evaluate_gate, load_policy, policy_identity
    from rai_audit.hashing import sha256_json

    rule = {"probe": "*", "metric": "*", "max_abs_change": 0.05}
    policy = load_policy({"rules": [rule]})
    assert "max_contamination" not in policy_identity({"rules": [rule]}, policy)["content"]
    assert evaluate_gate(policy, _comparison(None)).policy_sha256 == sha256_json(policy.content())
    assert "max_contamination" in load_policy("default").content()
