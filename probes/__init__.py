"""Benchmark probes, one module per benchmark, and toxicity scorers under ``probes.scorers``.

The registry maps a probe name (as used in configs and ``--probe``) to its module and class and
imports lazily, so listing probes costs nothing and one broken optional dependency does not take
the others down. :data:`ALIASES` adds lm-evaluation-harness task names whose definition matches a
probe's (docs/metrics.md, "lm-evaluation-harness task names"); a run records the probe's own name.
A name ``probe@label`` is an *instance* of a probe (:func:`split_instance`): the same class with
its own parameters, run beside the probe in one audit and recorded under the full name.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from rai_audit.errors import UserError

REGISTRY: dict[str, str] = {
    "winogender": "probes.winogender:Winogender",
    "winobias": "probes.winobias:WinoBias",
    "bbq": "probes.bbq:BBQ",
    "crows_pairs": "probes.crows_pairs:CrowsPairs",
    "realtoxicityprompts": "probes.realtoxicityprompts:RealToxicityPrompts",
    "identity_toxicity": "probes.identity_toxicity:IdentityToxicity",
    "bold": "probes.bold:BOLD",
    "toxigen": "probes.toxigen:ToxiGen",
    "civil_comments": "probes.civil_comments:CivilComments",
    "toxigen_classify": "probes.toxigen_classify:ToxiGenClassify",
}


def _extra_probes() -> dict[str, str]:
    """Probes registered through ``RAI_AUDIT_EXTRA_PROBES="name=module:Class,..."``.

    This is how an organisation adds an in-house benchmark without forking: one module with a
    ``Probe`` subclass on the Python path, one entry in the variable.
    """
    import os

    out = {}
    for part in os.environ.get("RAI_AUDIT_EXTRA_PROBES", "").split(","):
        name, sep, target = part.strip().partition("=")
        if sep and ":" in target:
            out[name.strip()] = target.strip()
    return out


REGISTRY.update(_extra_probes())


#: lm-evaluation-harness task names accepted wherever a probe name is (``--probe``, a config's
#: ``probes:``): alias -> (probe, the parameters the alias implies). Only tasks whose data set,
#: items and answer format match the probe's are aliases; docs/metrics.md's table says, per alias,
#: where the definitions still differ (prompt, metric, normalisation). Task names that lm-eval and
#: rai-audit share (``bbq``, ``realtoxicityprompts``, ``winogender``, ``crows_pairs``) are the
#: probes themselves; lm-eval's ``toxigen`` is a classification task, rai-audit's ``toxigen_classify``
#: (``toxigen`` here is the generation probe), so it is no alias.
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "crows_pairs_english": ("crows_pairs", {}),
    "winogender_all": ("winogender", {}),
    "bbq_generate": ("bbq", {"mode": "generative"}),
}

#: lm-eval tasks that are a subset of a probe's items: not aliases (a probe runs all its items), but
#: the subset's number is one of the probe's subgroup rows. Named in the unknown-probe message.
_CROWS_BIAS = {"age": "age", "disability": "disability", "gender": "gender", "nationality": "nationality",
               "physical_appearance": "physical-appearance", "race_color": "race-color", "religion": "religion",
               "sexual_orientation": "sexual-orientation", "socioeconomic": "socioeconomic"}
SUBSET_TASKS: dict[str, tuple[str, str]] = {
    **{f"crows_pairs_english_{k}": ("crows_pairs", f"its rows at bias_type={v}") for k, v in _CROWS_BIAS.items()},
    **{f"winogender_{g}": ("winogender", f"accuracy at gender={g}") for g in ("male", "female", "neutral")},
    "winogender_gotcha": ("winogender", "accuracy at cell=gotcha"),
    **{f"winogender_gotcha_{g}": ("winogender", f"accuracy at gender={g},cell=gotcha") for g in ("male", "female")},
    "bbq_ambig": ("bbq", "accuracy at context=ambig and bias_score_ambig"),
    "bbq_disambig": ("bbq", "accuracy at context=disambig and bias_score_disambig"),
    "bbq_generate_ambig": ("bbq with mode: generative", "accuracy at context=ambig and bias_score_ambig"),
    "bbq_generate_disambig": ("bbq with mode: generative", "accuracy at context=disambig and bias_score_disambig"),
}


#: Separates a probe from an instance label: ``civil_comments@10shot`` is the probe civil_comments
#: run a second time in the same audit, with its own parameters, and recorded under that name.
INSTANCE_SEPARATOR = "@"
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def split_instance(name: str) -> tuple[str, str | None]:
    """``("civil_comments", "10shot")`` for ``civil_comments@10shot``; ``(name, None)`` without a label.

    Why instances: a run stores records, metrics and data sets under the probe's name, and an audit
    lists each name once, so one probe at two settings (CivilComments 0- and 10-shot, Winogender
    multiple choice and generative, as Flan's appendix C reports them) needs two names. The label
    names the instance everywhere a probe name appears (store, comparison, gate rules, reports);
    the part before the separator picks the class from the registry."""
    base, sep, label = name.partition(INSTANCE_SEPARATOR)
    return base, (label if sep else None)


def instance_label_problem(name: str) -> str | None:
    """Why ``name``'s instance label is not allowed (None when it has none or a good one)."""
    label = split_instance(name)[1]
    if label is None or _LABEL.match(label):
        return None
    return (f"instance label {label!r} of {name!r} must be 1-40 characters: lower-case letters, digits, "
            f"'_' and '-', starting with a letter or digit (e.g. civil_comments@10shot)")


def canonical_name(name: str) -> str:
    """The probe an alias stands for, keeping an instance label (``bbq_generate@x`` -> ``bbq@x``);
    any other name unchanged (a registered probe wins over an alias)."""
    base, label = split_instance(name)
    base = base if base in REGISTRY else ALIASES.get(base, (base, {}))[0]
    return base if label is None else f"{base}{INSTANCE_SEPARATOR}{label}"


def instance_title(name: str, title: str) -> str:
    """A probe's title for reports: an instance's title names its label (two instances of one
    probe would read alike otherwise)."""
    label = split_instance(name)[1]
    return title if label is None else f"{title} [{label}]"


def resolve_alias(name: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``(probe name, parameters)`` for a probe name or alias (with or without an instance
    label, which is kept): an alias's implied parameters are merged under the given ones; a given
    parameter that contradicts the alias is a UserError."""
    params = dict(params or {})
    base, label = split_instance(name)
    if base in REGISTRY or base not in ALIASES:
        return name, params
    probe, implied = ALIASES[base]
    if label is not None:
        probe = f"{probe}{INSTANCE_SEPARATOR}{label}"
    clash = sorted(k for k, v in implied.items() if k in params and params[k] != v)
    if clash:
        raise UserError(
            f"Probe alias {name!r} means {probe} with {implied}, but its params set "
            + ", ".join(f"{k}={params[k]!r}" for k in clash)
            + f". Use the probe name {probe!r} with the params you want."
        )
    return probe, {**implied, **params}


def unknown_probe_message(name: str) -> str:
    """The one-line explanation of an unknown probe name (what the name may have meant)."""
    known = ", ".join(sorted(REGISTRY))
    aliases = ", ".join(sorted(ALIASES))
    hint = ""
    if name in SUBSET_TASKS:
        probe, rows = SUBSET_TASKS[name]
        hint = f" {name!r} is an lm-evaluation-harness subset task: run {probe} and read {rows}."
    elif name.startswith("crows_pairs_french"):
        hint = " French CrowS-Pairs is not supported (crows_pairs is the English release)."
    elif INSTANCE_SEPARATOR in name:
        hint = f" In {name!r}, the part before {INSTANCE_SEPARATOR!r} must be a probe (the rest labels an instance of it)."
    return f"unknown probe {name!r}; known probes: {known}; lm-evaluation-harness aliases: {aliases}.{hint}"


_CLASSES: dict[str, type] = {}


def register_probe(probe: type) -> type:
    """Register a ``Probe`` subclass under its ``name`` (in-process; usable as a class decorator).
    From the CLI or a scheduled job use ``RAI_AUDIT_EXTRA_PROBES`` instead. docs/architecture.md,
    "Add a probe"."""
    name = getattr(probe, "name", "")
    if not name or name in REGISTRY or name in ALIASES or INSTANCE_SEPARATOR in name:
        raise ValueError(f"probe name {name!r} is empty, taken or holds {INSTANCE_SEPARATOR!r} (the instance separator)")
    REGISTRY[name] = f"{probe.__module__}:{probe.__qualname__}"
    _CLASSES[name] = probe
    return probe


def probe_class(name: str):
    """The probe class registered under ``name`` (or the probe an alias names; an instance label,
    ``civil_comments@10shot``, names its probe's class); UserError naming the known probes otherwise."""
    name = split_instance(canonical_name(name))[0]
    if name in _CLASSES:
        return _CLASSES[name]
    try:
        target = REGISTRY[name]
    except KeyError:
        message = unknown_probe_message(name)
        raise UserError(message[0].upper() + message[1:]) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
