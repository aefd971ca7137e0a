"""The finetune config: one YAML file that says what to tune, on what, and how.

Every field is validated up front (pydantic, ``extra="forbid"``) so a typo or a nonsensical value
fails before any model is loaded, with a message that names the field and how to fix it
(docs/architecture.md, "Conventions": bad user input ends in a one-paragraph :class:`UserError`, exit 2).

Relative paths (``output_dir``, ``mixture`` and the mixture's task files) are resolved against the
folder of the file that names them, so a config works from any working directory. ``$VARS`` and
``~`` are expanded, so a mixture can point at ``${RAI_AUDIT_DATA}/flan_cot_samples/...`` without
copying benchmark files anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rai_audit.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# task sources
# --------------------------------------------------------------------------------------------


class JsonlSource(_Strict):
    """Local JSON Lines with ``instruction`` / ``input`` / ``output`` (Alpaca layout).

    Rows may instead carry ``instances: [{input, output}, ...]`` (the Alpaca seed-task layout);
    each instance becomes one example. ``fields`` renames columns: ``{instruction: prompt}``
    reads the instruction from a column called ``prompt``.
    """

    type: Literal["jsonl"]
    path: str
    fields: dict[str, str] = Field(default_factory=dict)


class HfSource(_Strict):
    """A Hugging Face data set; ``fields`` maps our field names to its column names.

    A hub id needs network (or a local hub cache). ``dataset: json`` (or csv, parquet) with
    ``data_files`` reads local files through the same ``datasets`` code path, offline.
    """

    type: Literal["hf"]
    dataset: str
    config_name: str | None = None
    data_files: Union[str, list[str], None] = None  # for builder data sets: {dataset: json, data_files: x.jsonl}
    split: str = "train"
    revision: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)


class FlanTemplateSource(_Strict):
    """FLAN 2021 templates (JSON ``{task: [{input, target}, ...]}``) applied to another source.

    ``data`` yields rows whose fields (after ``data.fields`` mapping) fill the template
    placeholders (``{premise}``, ``{answer}``, ...). A list field named ``options`` fills the
    ``{options_}`` placeholder as ``OPTIONS:\\n- a\\n- b`` (as FLAN renders it).
    """

    type: Literal["flan_templates"]
    templates: str
    template_task: str
    data: Union[JsonlSource, HfSource] = Field(discriminator="type")


class CotTsvSource(_Strict):
    """A chain-of-thought TSV: ``question<TAB>answer<TAB>rationale`` (Flan 2022 CoT mixture)."""

    type: Literal["cot_tsv"]
    path: str


class NiV2Source(_Strict):
    """A Super-NaturalInstructions task JSON (Definition + Positive Examples + Instances)."""

    type: Literal["niv2"]
    path: str


SourceSpec = Annotated[
    Union[JsonlSource, HfSource, FlanTemplateSource, CotTsvSource, NiV2Source], Field(discriminator="type")
]


class TaskSpec(_Strict):
    """One task of the mixture.

    ``cap``: at most this many distinct examples are taken (after a seeded shuffle); the paper's
    per-task example cap (Chung et al. 2022, Table 23; Raffel et al. 2020 examples-proportional
    mixing with a limit). ``collection`` groups tasks whose share is set by
    ``MixtureSpec.proportions`` (Muffin / T0-SF / NIV2 / CoT in the paper).
    """

    name: str
    source: SourceSpec
    cap: int | None = Field(default=None, gt=0)
    collection: str | None = None
    max_examples_read: int | None = Field(default=None, gt=0)


class FormatSpec(_Strict):
    """How examples are rendered (Chung et al. 2022, section 2.2 and Figure 3).

    Each example independently gets zero-shot with probability ``zero_shot`` (else few-shot with
    ``n_shots`` exemplars of the same task), and, for tasks that carry a rationale, chain of
    thought with probability ``cot``. Template choice is per example, seeded.
    """

    zero_shot: float = Field(default=0.5, ge=0.0, le=1.0)
    n_shots: int = Field(default=2, ge=1, le=16)
    cot: float = Field(default=0.5, ge=0.0, le=1.0)


class MixtureSpec(_Strict):
    tasks: list[TaskSpec]
    proportions: dict[str, float] = Field(default_factory=dict)
    total: int | None = Field(default=None, gt=0)
    formats: FormatSpec = FormatSpec()
    seed: int = 0
    base_dir: str | None = None  # set by the loader: folder relative paths resolve against

    @field_validator("tasks")
    @classmethod
    def _non_empty(cls, v: list[TaskSpec]) -> list[TaskSpec]:
        if not v:
            raise ValueError("the mixture has no tasks; list at least one task under 'tasks'")
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"task names must be unique; repeated: {', '.join(dup)}")
        return v

    @model_validator(mode="after")
    def _proportions_known(self) -> "MixtureSpec":
        groups = {t.collection or t.name for t in self.tasks}
        unknown = sorted(set(self.proportions) - groups)
        if unknown:
            raise ValueError(
                f"proportions name {', '.join(unknown)}, which no task belongs to "
                f"(collections and task names: {', '.join(sorted(groups))})"
            )
        if any(p < 0 for p in self.proportions.values()):
            raise ValueError("proportions must be >= 0")
        if self.proportions and sum(self.proportions.values()) <= 0:
            raise ValueError("proportions must not all be zero")
        missing = sorted(groups - set(self.proportions)) if self.proportions else []
        if missing:
            raise ValueError(
                f"proportions are given but not for {', '.join(missing)}; give every collection "
                "(or ungrouped task) a proportion, or none at all for examples-proportional mixing"
            )
        return self


# --------------------------------------------------------------------------------------------
# the finetune config
# --------------------------------------------------------------------------------------------


class ContaminationSpec(_Strict):
    """N-gram sizes of the training-data fingerprint the stage writes (``training_fingerprint.npz``).

    ``ngram``: the overlap unit, 13 words as in the GPT-3 and FLAN contamination analyses (Brown et
    al. 2020, appendix C; Wei et al. 2021, appendix C). ``short_ngram``: a second, shorter size
    for evaluation items too short to hold an ``ngram`` (8, the smallest N of the GPT-3 study).
    The sizes do not change what is trained, so a resumed run may change them (the fingerprint is
    rebuilt from the same mixture).
    """

    ngram: int = Field(default=13, ge=1, le=64)
    short_ngram: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _short_fits(self) -> "ContaminationSpec":
        if self.short_ngram > self.ngram:
            raise ValueError(
                f"short_ngram ({self.short_ngram}) is larger than ngram ({self.ngram}); the short size is "
                "the fallback for items too short for ngram, so lower short_ngram or raise ngram"
            )
        return self


class MeshSpec(_Strict):
    data: int = Field(default=1, ge=1)
    fsdp: int = Field(default=1, ge=1)


class FinetuneConfig(_Strict):
    """Everything that determines a finetune run (and therefore its manifest)."""

    model: str = Field(description="base model: 'default', a local HF folder, a .gguf file, or hf:org/name[@rev]")
    tokenizer: str | None = Field(default=None, description="tokenizer reference; defaults to the model's own")
    output_dir: str
    mixture: Union[str, MixtureSpec]
    seq_len: int = Field(default=512, ge=8)
    target_len: int | None = Field(default=None, ge=4, description="T5 decoder row length; default seq_len // 2")
    batch_size: int = Field(default=8, ge=1)
    steps: int = Field(default=100, ge=1)
    optimizer: Literal["auto", "adamw", "adafactor"] = "auto"
    lr: float = Field(default=1e-4, gt=0)
    schedule: Literal["auto", "cosine", "constant"] = "auto"
    warmup_steps: int = Field(default=10, ge=0)
    min_lr_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    b1: float = Field(default=0.9, ge=0.0, lt=1.0)
    b2: float = Field(default=0.95, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    z_loss: float = Field(default=0.0, ge=0.0)
    dtype: Literal["float32", "bfloat16"] = "float32"
    dropout: bool = Field(default=False, description="train with the model config's dropout rates")
    mesh: MeshSpec = MeshSpec()
    checkpoint_every: int = Field(default=50, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    log_every: int = Field(default=1, ge=1)
    contamination: ContaminationSpec = ContaminationSpec()
    seed: int = 0
    base_dir: str | None = None  # set by the loader: folder relative paths resolve against

    @model_validator(mode="after")
    def _warmup_fits(self) -> "FinetuneConfig":
        if self.warmup_steps > self.steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) is larger than steps ({self.steps}); "
                "lower warmup_steps or raise steps"
            )
        return self

    # -- helpers -------------------------------------------------------------------------------
    def resolve_path(self, value: str) -> Path:
        return resolve_path(value, self.base_dir)

    @property
    def output_path(self) -> Path:
        return self.resolve_path(self.output_dir)

    def mixture_spec(self) -> MixtureSpec:
        """The mixture, loading it from its YAML file when ``mixture`` is a path."""
        if isinstance(self.mixture, MixtureSpec):
            m = self.mixture
            return m if m.base_dir else m.model_copy(update={"base_dir": self.base_dir})
        return load_mixture(self.resolve_path(self.mixture))


def resolve_path(value: str, base_dir: str | None) -> Path:
    """Expand ``$VARS`` and ``~``; a relative path is relative to ``base_dir`` (else the cwd)."""
    expanded = os.path.expandvars(value)
    unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
    if unset:
        raise UserError(
            f"The path {value!r} uses the environment variable {unset[0]}, which is not set. Set it (e.g. "
            f"{unset[0]}=../shared/data for the benchmark files) or write the path out."
        )
    p = Path(os.path.expanduser(expanded))
    if not p.is_absolute() and base_dir:
        p = Path(base_dir) / p
    return Path(os.path.normpath(p))


def _explain(err: ValidationError, what: str, where: str) -> UserError:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see finetune/config.py for the fields)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{loc}: {msg}")
    return UserError(f"The {what} {where} is invalid: " + "; ".join(lines) + ". Fix these fields and run again.")


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"The {what} {path} does not exist. Check the path.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"The {what} {path} cannot be read ({e}). Check that it is a UTF-8 YAML file.") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"The {what} {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise UserError(f"The {what} {path} must be a YAML mapping of fields, not {type(raw).__name__}.")
    return raw


def load_mixture(path: Path) -> MixtureSpec:
    raw = _read_yaml(path, "mixture spec")
    raw.setdefault("base_dir", str(path.resolve().parent))
    try:
        return MixtureSpec.model_validate(raw)
    except ValidationError as e:
        raise _explain(e, "mixture spec", str(path)) from None


def parse_config(raw: dict[str, Any], *, base_dir: str | None = None, where: str = "(inline)") -> FinetuneConfig:
    raw = dict(raw)
    if base_dir is not None:
        raw.setdefault("base_dir", base_dir)
        if isinstance(raw.get("mixture"), dict):
            raw["mixture"] = {**raw["mixture"], "base_dir": raw["mixture"].get("base_dir", base_dir)}
    try:
        return FinetuneConfig.model_validate(raw)
    except ValidationError as e:
        raise _explain(e, "finetune config", where) from None


def load_config(path: str | os.PathLike) -> FinetuneConfig:
    """Read and validate a finetune YAML config (UserError naming the field on any problem)."""
    p = Path(path)
    raw = _read_yaml(p, "finetune config")
    return parse_config(raw, base_dir=str(p.resolve().parent), where=str(p))
