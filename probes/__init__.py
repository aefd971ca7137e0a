"""Benchmark probes, one module per benchmark, and toxicity scorers under ``probes.scorers``.

The registry maps a probe name (as used in configs and ``--probe``) to its module and class and
imports lazily, so listing probes costs nothing and one broken optional dependency does not take
the others down.
"""

from __future__ import annotations

import importlib

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


_CLASSES: dict[str, type] = {}


def register_probe(probe: type) -> type:
    """Register a ``Probe`` subclass under its ``name`` (in-process; usable as a class decorator).
    From the CLI or a scheduled job use ``RAI_AUDIT_EXTRA_PROBES`` instead. docs/architecture.md,
    "Add a probe"."""
    name = getattr(probe, "name", "")
    if not name or name in REGISTRY:
        raise ValueError(f"probe name {name!r} is empty or taken")
    REGISTRY[name] = f"{probe.__module__}:{probe.__qualname__}"
    _CLASSES[name] = probe
    return probe


def probe_class(name: str):
    """The probe class registered under ``name``; UserError naming the known probes otherwise."""
    if name in _CLASSES:
        return _CLASSES[name]
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UserError(
            f"Unknown probe {name!r}. Known probes: {', '.join(sorted(REGISTRY))}."
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
