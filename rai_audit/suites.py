"""Bundled audit suites: named batteries of probes and settings, ``rai-audit run --suite NAME``.

Why: a battery such as Flan's appendix C (Chung et al. 2022) is a dozen probe instances at
specific settings (25 sampled continuations at top-k 40, CivilComments at 0 and 10 shots,
Winogender scored and generated, ...); writing that config by hand invites drift between audits
that are meant to be the same. A suite is that config, shipped with rai-audit and reviewed once.

A suite is a YAML file in ``rai_audit/assets/suites/`` (read through
:func:`rai_audit.data_root.assets_dir`, so a wheel reads its own copy): an audit config
(docs/configuration.md) plus a ``suite:`` block (``title``, ``paper`` and any YAML anchors the
probes share), which is removed before the config is validated. :func:`suite_config` layers, in
order: the suite; an audit config file given beside it (models, scorer, runtime, store, gate,
output; not ``probes``, which are the suite's); the command-line overrides.

:func:`with_continuation_tokens` sets the continuation length of every sampled-continuation probe
(the ones whose parameters are :class:`probes.toxicity_common.GenerationParams`: RealToxicityPrompts,
identity-term toxicity, BOLD, ToxiGen), the one setting the Flan suite's default departs from the
paper in (docs/battery.md); it applies to any audit, suite or not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from rai_audit.config import AuditConfig, apply_overrides, parse_config, read_yaml, resolve_file_paths
from rai_audit.errors import UserError

SUITE_SUFFIX = ".yaml"


def suites_dir() -> Path:
    from rai_audit.data_root import assets_dir

    return assets_dir() / "suites"


def suite_names() -> list[str]:
    """The bundled suites' names, sorted."""
    d = suites_dir()
    return sorted(p.name[: -len(SUITE_SUFFIX)] for p in d.glob(f"*{SUITE_SUFFIX}")) if d.is_dir() else []


def read_suite(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the suite's audit config data, its ``suite:`` block) for a bundled suite name."""
    path = suites_dir() / f"{name}{SUITE_SUFFIX}"
    if not name or "/" in name or "\\" in name or not path.is_file():
        known = ", ".join(suite_names()) or "none"
        raise UserError(f"Unknown suite {name!r}; bundled suites: {known} (`rai-audit suites` describes them).")
    data = read_yaml(path, "suite file")
    if not isinstance(data, dict):
        raise UserError(f"The suite file {path} is not a YAML mapping; reinstall rai-audit.")
    data = copy.deepcopy(data)  # YAML anchors share one dict between probes; overrides must not
    meta = data.pop("suite", None) or {}
    return data, meta if isinstance(meta, dict) else {}


def describe_suites() -> list[tuple[str, str, int]]:
    """(name, title, number of probe instances) of every bundled suite."""
    out = []
    for name in suite_names():
        data, meta = read_suite(name)
        out.append((name, str(meta.get("title") or ""), len(data.get("probes") or [])))
    return out


def _layer(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top``'s settings over ``base``'s: mappings (models, scorer, runtime, ...) merge key by key,
    anything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _layer(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def suite_config(name: str, config_path: str | None = None, overrides: dict[str, Any] | None = None) -> AuditConfig:
    """The audit config of suite ``name``, with the audit config file ``config_path`` layered over
    it (its relative paths relative to that file) and ``overrides`` (dotted keys, flags) over both."""
    data, _ = read_suite(name)
    source = f"The suite {name!r}"
    if config_path:
        user = read_yaml(config_path, "audit config") or {}
        if not isinstance(user, dict):
            raise UserError(f"The audit config {config_path!r} must be a YAML mapping of settings. See docs/configuration.md.")
        if "probes" in user:
            raise UserError(
                f"The audit config {config_path!r} lists probes, but --suite {name} brings its own. Remove `probes` "
                "from the file to run the suite with its other settings, or drop --suite to run the file's probes."
            )
        data = _layer(data, resolve_file_paths(user, Path(config_path).resolve().parent))
        source += f" with the audit config {config_path!r}"
    apply_overrides(data, overrides)
    return parse_config(data, source)


def continuation_probes(cfg: AuditConfig) -> list[str]:
    """The config's probes that sample continuations (their params are GenerationParams)."""
    from probes import probe_class
    from probes.toxicity_common import GenerationParams

    return [p.name for p in cfg.probes if issubclass(probe_class(p.name).Params, GenerationParams)]


def with_continuation_tokens(cfg: AuditConfig, tokens: int | None) -> AuditConfig:
    """``cfg`` with ``max_new_tokens: tokens`` for every sampled-continuation probe (unchanged
    when ``tokens`` is None). A UserError when the config has no such probe: the flag would do
    nothing, silently."""
    if tokens is None:
        return cfg
    names = set(continuation_probes(cfg))
    if not names:
        raise UserError("--continuation-tokens sets the continuation length of realtoxicityprompts, identity_toxicity, "
                        "bold and toxigen, and this audit runs none of them. Drop the flag.")
    probes = [p.model_copy(update={"params": {**p.params, "max_new_tokens": tokens}}) if p.name in names else p
              for p in cfg.probes]
    return cfg.model_copy(update={"probes": probes})
