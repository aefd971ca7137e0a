"""lm-evaluation-harness task names as probe aliases (docs/metrics.md, "lm-evaluation-harness task
names"): accepted where a probe name is, recorded as the probe, subset tasks explained."""

from __future__ import annotations

import pytest

import probes
from rai_audit.cli import main
from rai_audit.cli.common import probe_overrides
from rai_audit.config import parse_config
from rai_audit.errors import UserError


def test_config_accepts_aliases_and_records_the_probe():
    cfg = parse_config({"probes": ["crows_pairs_english", "winogender_all", {"name": "bbq_generate", "params": {"limit": 5}}]})
    assert [(p.name, p.params) for p in cfg.probes] == [
        ("crows_pairs", {}), ("winogender", {}), ("bbq", {"mode": "generative", "limit": 5})]
    assert parse_config({"probes": "crows_pairs_english,bbq"}).model_dump()["probes"][0]["name"] == "crows_pairs"


def test_alias_conflicts_and_duplicates_are_errors():
    with pytest.raises(UserError, match="bbq_generate' means bbq with .*mode='mc'"):
        parse_config({"probes": [{"name": "bbq_generate", "params": {"mode": "mc"}}]})
    with pytest.raises(UserError, match="listed twice: crows_pairs"):
        parse_config({"probes": ["crows_pairs", "crows_pairs_english"]})


@pytest.mark.parametrize("name, hint", [
    ("winogender_female", "run winogender and read accuracy at gender=female"),
    ("crows_pairs_english_age", "run crows_pairs and read its rows at bias_type=age"),
    ("bbq_ambig", "run bbq and read accuracy at context=ambig"),
    ("crows_pairs_french", "French CrowS-Pairs is not supported"),
])
def test_subset_tasks_are_explained(name, hint):
    with pytest.raises(UserError) as e:
        parse_config({"probes": [name]})
    assert hint in str(e.value) and "lm-evaluation-harness aliases: bbq_generate, crows_pairs_english, winogender_all" in str(e.value)


def test_cli_probe_flag_reports_an_unknown_lm_eval_subset_with_exit_2(tmp_path, capsys):
    code = main(["probe", "--probe", "winogender_gotcha", "--db", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and "run winogender and read accuracy at cell=gotcha" in err
    assert not (tmp_path / "s.sqlite").exists()


def test_probe_flag_keeps_the_config_params_of_the_aliased_probe(tmp_path):
    config = tmp_path / "audit.yaml"
    config.write_text("probes:\n  - {name: crows_pairs, params: {limit: 7}}\n", encoding="utf-8")
    assert probe_overrides(str(config), "crows_pairs_english,bbq") == [
        {"name": "crows_pairs_english", "params": {"limit": 7}}, {"name": "bbq", "params": {}}]


def test_registry_lookups_resolve_aliases():
    from probes.crows_pairs import CrowsPairs

    assert probes.probe_class("crows_pairs_english") is CrowsPairs
    assert probes.canonical_name("winogender_all") == "winogender" and probes.canonical_name("bbq") == "bbq"
    assert all(target in probes.REGISTRY for target, _ in probes.ALIASES.values())
    assert not set(probes.ALIASES) & set(probes.REGISTRY)  # an alias never hides a probe

    class Clash(probes.probe_class("bbq")):
        name = "winogender_all"

    with pytest.raises(ValueError, match="taken"):
        probes.register_probe(Clash)
