"""Toxicity scorers by name: the registry the CLI, the config and the probes use.

Name grammar (``--scorer NAME`` / ``scorer.name`` in audit.yaml)::

    profanity-check                  offline default; an offensive-language classifier
                                     (attribute "offensive", see probes.scorers.profanity)
    detoxify:original                Detoxify checkpoints (also unbiased, multilingual,
    detoxify:<variant>               original-small, unbiased-small); see detoxify_format
    hf:<org>/<name>[@<revision>]     any Hugging Face sequence-classification model
    <local directory>                a save_pretrained sequence-classification model

Options common to all: ``threshold`` (default 0.5) and ``operator`` (">=" default, or ">"),
recorded in the identity beside every score. Scorer-specific options (``checkpoint``,
``huggingface_config_path``, ``checkpoint_sha256``, ``trust_checkpoint``, ``toxic_labels``,
``activation``, ``device``, ``batch_size`` ...) are checked against a strict schema per scorer
(:mod:`probes.scorers._options`): an unknown option, a quoted boolean (``'false'``), a number
given as a string or a boolean given as ``1`` is a UserError naming the option and the allowed
ones. The audit config applies the same check when it is loaded (:func:`check_config_options`).

Trust: Detoxify checkpoints are pickles. They are opened with ``torch.load(weights_only=True)``,
which cannot run code; the code a pickle may carry runs only when the user trusts that exact
file, i.e. gives ``checkpoint_sha256`` equal to its sha256 *and* ``trust_checkpoint: true`` (see
:mod:`probes.scorers.detoxify_format`). Hugging Face classifiers load safetensors, or ``.bin``
weights with ``weights_only=True``, and never remote code. ``profanity-check`` unpickles the
scikit-learn model shipped inside the installed ``alt-profanity-check`` package: it is trusted
as that installed package is (importing it runs its code anyway).

Modules are imported lazily, so naming a scorer costs nothing until it is built (torch is only
imported for the transformer scorers).

In-house scorers plug in without a fork: :func:`register_scorer` (in-process) or
``RAI_AUDIT_EXTRA_SCORERS="name=module:Factory,..."`` (for the CLI and scheduled jobs). The
factory is called with the validated options and returns a :class:`~rai_audit.scoring.Scorer`;
its options schema is its ``Options`` attribute (a :class:`ScorerOptions` subclass; the common
``threshold`` and ``operator`` only, when it has none). docs/architecture.md, "Add a scorer".
"""

from __future__ import annotations

import os
from typing import Any, Callable

from rai_audit.errors import UserError
from rai_audit.scoring import Scorer

from probes.scorers._options import SCHEMAS, ScorerOptions, validate_options

DETOXIFY_VARIANTS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")
SCORER_NAMES: tuple[str, ...] = (
    "profanity-check",
    *(f"detoxify:{v}" for v in DETOXIFY_VARIANTS),
    "hf:<org>/<name>[@<revision>]",
    "<local model directory>",
)
DEFAULT_SCORER = "profanity-check"


_REGISTERED: dict[str, Callable[..., Scorer]] = {}


def register_scorer(name: str, factory: Callable[..., Scorer]) -> None:
    """Make ``name`` a scorer (``--scorer name``); ``factory(**options)`` builds it."""
    if not name or name in _REGISTERED or scorer_kind(name) is not None:
        raise ValueError(f"scorer name {name!r} is empty or taken")
    _REGISTERED[name] = factory


def _extra(name: str) -> Callable[..., Scorer] | None:
    """A registered scorer's factory, importing an ``RAI_AUDIT_EXTRA_SCORERS`` entry on first use."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    for part in os.environ.get("RAI_AUDIT_EXTRA_SCORERS", "").split(","):
        key, sep, target = part.strip().partition("=")
        if sep and key.strip() == name:
            import importlib

            module, _, attr = target.strip().partition(":")
            try:
                factory = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as e:
                raise UserError(f"RAI_AUDIT_EXTRA_SCORERS names {target.strip()!r} for scorer {name!r}, "
                                f"which cannot be imported: {e}.") from None
            _REGISTERED[name] = factory
            return factory
    return None


def _known() -> str:
    return ", ".join([*SCORER_NAMES, *sorted(_REGISTERED)])


def _resolve(name: str) -> tuple[Callable[..., Scorer], tuple[Any, ...]]:
    factory = _extra(name)
    if factory is not None:
        return factory, ()
    if name == "profanity-check":
        from probes.scorers.profanity import ProfanityCheckScorer

        return ProfanityCheckScorer, ()
    if name.startswith("detoxify:"):
        variant = name.split(":", 1)[1]
        if variant not in DETOXIFY_VARIANTS:
            raise UserError(
                f"Unknown Detoxify variant in scorer name {name!r}. Known scorers: {_known()}."
            )
        from probes.scorers.detoxify_format import DetoxifyScorer

        return DetoxifyScorer, (variant,)
    if name.startswith("hf:") or os.path.isdir(os.path.expanduser(name)):
        from probes.scorers.hf_classifier import HFClassifierScorer

        return HFClassifierScorer, (name,)
    if name.endswith((".ckpt", ".pt", ".pth")):
        raise UserError(
            f"Scorer {name!r} looks like a checkpoint file, not a scorer name. For a Detoxify "
            "checkpoint use the name detoxify:<variant> with the options checkpoint=PATH, "
            "huggingface_config_path=DIR and checkpoint_sha256=<digest>."
        )
    raise UserError(
        f"Unknown scorer {name!r}. Known scorers: {_known()}. (A local directory must exist and "
        "hold a save_pretrained sequence-classification model.)"
    )


def scorer_kind(name: str) -> str | None:
    """``profanity``, ``detoxify`` or ``hf`` (the options schema family), None when unknown."""
    name = name.strip()
    if name == "profanity-check":
        return "profanity"
    if name.startswith("detoxify:"):
        return "detoxify"
    if name.startswith("hf:") or os.path.isdir(os.path.expanduser(name)):
        return "hf"
    return None


def options_schema(name: str) -> type[ScorerOptions] | None:
    if isinstance(name, str) and (factory := _extra(name.strip())) is not None:
        schema = getattr(factory, "Options", ScorerOptions)
        return schema if isinstance(schema, type) and issubclass(schema, ScorerOptions) else ScorerOptions
    kind = scorer_kind(name) if isinstance(name, str) else None
    return SCHEMAS[kind] if kind else None


def check_config_options(name: str, options: dict[str, Any]) -> None:
    """Validate ``scorer.options`` of an audit config; UserError naming the bad option.

    ``threshold`` and ``operator`` are ``scorer.threshold`` / ``scorer.operator`` in the config,
    not options. An unknown scorer name is left to :func:`get_scorer` (its message lists the
    known names); this check loads nothing and never touches the network.
    """
    if not isinstance(options, dict):
        raise UserError(f"scorer.options must be a mapping of option names to values, not {options!r}.")
    misplaced = sorted({"threshold", "operator"} & set(options))
    if misplaced:
        raise UserError(
            f"Scorer option(s) {', '.join(misplaced)} belong directly under scorer "
            f"(scorer.{misplaced[0]}), not under scorer.options."
        )
    schema = options_schema(name)
    if schema is not None:
        validate_options(schema, name.strip(), options, hide=("threshold", "operator"))


def get_scorer(name: str, **options: Any) -> Scorer:
    """Build the scorer ``name`` with ``options``; UserError for an unknown name or option."""
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"Scorer name {name!r} is empty. Known scorers: {_known()}.")
    name = name.strip()
    factory, args = _resolve(name)
    schema = options_schema(name)
    assert schema is not None  # _resolve accepted the name, so it has a kind
    return factory(*args, **validate_options(schema, name, options))


__all__ = ["SCORER_NAMES", "DEFAULT_SCORER", "DETOXIFY_VARIANTS", "check_config_options", "get_scorer",
           "options_schema", "register_scorer", "scorer_kind", "ScorerOptions"]
