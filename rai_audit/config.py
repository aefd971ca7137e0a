"""The audit configuration (``audit.yaml``), validated by pydantic.

One file describes a whole audit: which models (base and, optionally, tuned or to be tuned),
which probes with which parameters, the toxicity scorer and its threshold, decoding and runtime
settings, seeds, where results go. Every command that takes ``--config`` reads this; flags given
on the command line override the file's values.

A bad file is a user error: :func:`load_config` turns pydantic's report into one message naming
the field, the bad value and what is allowed (exit code 2, no traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from rai_audit.errors import UserError

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelsConfig(_Strict):
    """``base`` is audited as is; ``tuned`` is audited beside it (or produced by ``finetune``)."""

    base: str = Field("default", description="Model reference: hf:org/name[@rev], a local HF directory, a .gguf file, or 'default' (embedded SmolLM2-135M-Instruct).")
    tuned: str | None = Field(None, description="Reference of the tuned model; left out when the finetune step produces it.")
    tuned_training_data: str | None = Field(None, description="The tuned model's training data (JSON Lines, JSON, text lines, or a training_fingerprint.npz) when rai-audit's finetune stage did not make it: each probe's items are checked against it for train/test overlap (13-gram contamination). A model the finetune stage exported carries its own fingerprint.")


class ProbeConfig(_Strict):
    """A probe and its parameters (each probe documents its own; unknown ones are rejected)."""

    name: str = Field(description="A probe name from the registry in probes/__init__.py (winogender, bbq, realtoxicityprompts, ...; docs/metrics.md lists them all), or an lm-evaluation-harness task name that is an alias of one (crows_pairs_english, winogender_all, bbq_generate; recorded under the probe's own name). `probe@label` (e.g. civil_comments@10shot) is a second instance of a probe with its own params, recorded, compared and gated under that name; the label is lower-case letters, digits, _ and -.")
    params: dict[str, Any] = Field(default_factory=dict, description="Probe parameters, validated by the probe.")

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        """An lm-evaluation-harness alias becomes its probe and the parameters it implies."""
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            from probes import canonical_name, resolve_alias  # light module: names only, probes load lazily

            if not isinstance(data.get("params", {}), dict):  # the params field reports that
                return {**data, "name": canonical_name(data["name"])}
            try:
                name, params = resolve_alias(data["name"], data.get("params"))
            except UserError as e:
                raise ValueError(str(e).rstrip(".")) from None
            if name != data["name"]:
                data = {**data, "name": name, "params": params}
        return data

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from probes import REGISTRY, instance_label_problem, split_instance, unknown_probe_message

        if split_instance(v)[0] not in REGISTRY:
            raise ValueError(unknown_probe_message(v).rstrip("."))
        problem = instance_label_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class ScorerConfig(_Strict):
    """The toxicity scorer. ``profanity-check`` works offline; Detoxify needs its weights."""

    name: str = Field("profanity-check", description="profanity-check | detoxify:original|unbiased|multilingual|original-small|unbiased-small | hf:<ref> | a local classifier directory.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Probability at which a text counts as toxic.")
    operator: Literal[">=", ">"] = Field(">=", description="How a probability is compared with the threshold.")
    options: dict[str, Any] = Field(default_factory=dict, description="Scorer options (checkpoint, checkpoint_sha256, trust_checkpoint, huggingface_config_path, toxic_labels, ...), checked strictly per scorer when the config loads: unknown options, quoted booleans and numbers as strings are errors. A Detoxify pickle's code runs only with checkpoint_sha256 equal to the file's sha256 and trust_checkpoint: true.")

    @field_validator("options")
    @classmethod
    def _scorer_options(cls, v: dict[str, Any], info) -> dict[str, Any]:
        from probes.scorers import check_config_options  # pydantic schemas only; loads no model

        try:
            check_config_options(info.data.get("name", ""), v)
        except UserError as e:
            raise ValueError(str(e).rstrip(".")) from None
        return v


class RuntimeConfig(_Strict):
    """Where and how models run."""

    device: str = Field("auto", description="auto | cpu | cuda | cuda:N.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto (float32 on CPU; the model's own 16-bit type on CUDA) | float32 | bfloat16 | float16. bfloat16/float16 is the fast mode: its answers are keyed apart from float32 in the store and recorded in the run's settings (`precision`); it pays on GPUs and on CPUs with AMX or AVX512-BF16 only.")
    batch_size: int | None = Field(None, ge=1, description="Requests per model batch; automatic when unset.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for confidence intervals (0 disables CIs).")


class TrajectoryConfig(_Strict):
    """A trajectory audit (docs/trajectories.md): the probes run at step 0 (the base), every
    ``every`` training steps and the final step, on exactly the audit's items, decoding and seeds;
    and, for ``rai-audit sweep``, the mixture sizes to tune and audit."""

    every: int | None = Field(None, ge=1, description="Probe a checkpoint every N training steps, besides the base (step 0) and the final step; needs `finetune`. Each such checkpoint is exported as a Hugging Face checkpoint. Unset: no step trajectory.")
    probes: list[ProbeConfig] | None = Field(None, description="Probes run at each point (same syntax as the top-level `probes`); the audit's probes when unset.")
    limit: int | None = Field(None, ge=1, description="Items per probe at each point (a seeded sample, the same items at every point); the audit's `limit` when unset.")
    mixture_sizes: list[int | Literal["all"]] | None = Field(None, description="For `rai-audit sweep`: tune with the first 1, 2, 4, ... tasks of the finetune mixture (same steps, same seed) and audit each; e.g. [1, 2, 4, all].")

    @field_validator("probes", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return _probe_shorthand(v)

    @field_validator("mixture_sizes")
    @classmethod
    def _sizes(cls, v: list | None) -> list | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one mixture size, e.g. [1, 2, all]")
            if any(isinstance(x, int) and x < 1 for x in v):
                raise ValueError("mixture sizes are numbers of tasks, at least 1 (or 'all')")
        return v


def _probe_shorthand(v: Any) -> Any:
    """Allow ``probes: [winogender, {name: bbq, params: {...}}]`` and ``"a,b"``."""
    if isinstance(v, str):
        v = [p.strip() for p in v.split(",") if p.strip()]
    if isinstance(v, list):
        return [{"name": p} if isinstance(p, str) else p for p in v]
    return v


class AuditConfig(_Strict):
    """A whole audit: models, probes, scorer, runtime, seeds, store and output."""

    name: str = Field("audit", description="Name of the audit (used for locks, reports and trends).")
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    finetune: str | None = Field(None, description="Path of a finetune config (YAML); when set, `rai-audit run` tunes the base model first.")
    probes: list[ProbeConfig] = Field(default_factory=lambda: [ProbeConfig(name="identity_toxicity")], min_length=1)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    seed: int = Field(1234, description="Seed for item sampling, few-shot exemplars, generation and bootstraps.")
    limit: int | None = Field(None, ge=1, description="At most this many items per probe (a seeded sample); all when unset.")
    data_dir: str | None = Field(None, description="Benchmark data root (one folder per benchmark); RAI_AUDIT_DATA when unset.")
    store: str | None = Field(None, description="Results store URL or SQLite path; RAI_AUDIT_DB or the default SQLite file when unset.")
    output_dir: str = Field("rai-audit-out", description="Where reports and exported models are written.")
    gate: str | None = Field(None, description="Path of a gate policy YAML applied by `rai-audit run`.")
    allow_modified_data: bool = Field(False, description="Accept local benchmark files whose sha256 differs from the hash pinned in rai-audit's dataset manifests (rai_audit/assets/manifests/) instead of refusing them (exit 2); each run's datasets then record every such file with its actual and pinned sha256, so its run key differs from a run on the pinned files. Flag: --allow-modified-data. Omitted from the recorded config when false.")

    trajectory: TrajectoryConfig | None = Field(None, description="A trajectory audit: probe checkpoints during the finetune (every N steps) and, with `rai-audit sweep`, models tuned on growing mixtures. Omitted from the recorded config when unset.")

    @field_validator("probes", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return _probe_shorthand(v)

    @model_serializer(mode="wrap")
    def _omit_default_override(self, handler):
        """Leave ``allow_modified_data`` out while false and ``trajectory`` while unset, so a default
        config dumps (and is recorded with each run, in its run key) exactly as before the options
        existed; when set they are recorded."""
        data = handler(self)
        if isinstance(data, dict):
            if not self.allow_modified_data:
                data.pop("allow_modified_data", None)
            if self.trajectory is None:
                data.pop("trajectory", None)
        return data

    @model_validator(mode="after")
    def _unique_probes(self) -> "AuditConfig":
        names = [p.name for p in self.probes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"probe(s) listed twice: {', '.join(dupes)}; to run a probe twice with different params, "
                             f"name the second one probe@label (e.g. {dupes[0]}@second)")
        if self.trajectory is not None and self.trajectory.every is not None and not self.finetune:
            raise ValueError("trajectory.every probes checkpoints of the finetune step, so it needs `finetune` (a finetune config)")
        return self


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        return f"field {loc!r} is not allowed (unknown setting; check its spelling)"
    if "input" in err and err.get("type") != "missing":
        return f"field {loc!r} has bad value {err['input']!r}: {msg}"
    return f"field {loc!r}: {msg}"


def validation_message(source: str, exc: ValidationError, model: type[BaseModel]) -> str:
    """One paragraph naming each bad field, its value and what is allowed."""
    problems = "; ".join(_describe(e) for e in exc.errors(include_url=False))
    allowed = ", ".join(model.model_fields)
    return f"{source} is not a valid {model.__name__}: {problems}. Top-level fields allowed: {allowed}. See docs/configuration.md."


def parse_config(data: Any, source: str = "the audit config") -> AuditConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source} must be a YAML mapping of settings, not {type(data).__name__}. See docs/configuration.md.")
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(validation_message(source, e, AuditConfig)) from None


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Parse a YAML file with user-facing errors for missing, unreadable or malformed files."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"The {what} {str(p)!r} does not exist. Check the path.") from None
    except UnicodeDecodeError:
        raise UserError(f"The {what} {str(p)!r} is not UTF-8 text.") from None
    except OSError as e:
        raise UserError(f"The {what} {str(p)!r} cannot be read: {e.strerror}.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"The {what} {str(p)!r} is not valid YAML{where}: {getattr(e, 'problem', e)}.") from None


BUNDLED_POLICIES = ("default", "demo")


def _is_local_path(value: str) -> bool:
    return not (value == "default" or value.startswith("hf:") or "://" in value)


def resolve_file_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make the relative paths written in a config file relative to that file's folder.

    A scheduled audit runs from whatever directory cron or systemd starts in; resolving against
    the file makes ``output_dir: out`` mean the same place every time. Model references that are
    not local paths (``default``, ``hf:...``), store URLs and bundled policy names are left alone.
    """
    def rebase(value: Any) -> Any:
        if not isinstance(value, str) or not value or not _is_local_path(value):
            return value
        p = Path(value).expanduser()
        return value if p.is_absolute() else str((base_dir / p).resolve())

    out = dict(data)
    for key in ("output_dir", "data_dir", "finetune", "store"):
        if key in out:
            out[key] = rebase(out[key])
    gate = out.get("gate")
    if isinstance(gate, str) and not (gate in BUNDLED_POLICIES and not (base_dir / gate).exists()):
        out["gate"] = rebase(gate)
    models = out.get("models")
    if isinstance(models, dict):
        out["models"] = {k: rebase(v) for k, v in models.items()}
    return out


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> AuditConfig:
    """Read ``path`` (or start from defaults), apply command-line overrides, validate.

    Relative paths inside the file are taken relative to the file's folder; paths given as
    overrides (command-line flags) stay relative to the working directory.
    """
    data = read_yaml(path, "audit config") if path else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"The audit config {str(path)!r} must be a YAML mapping of settings. See docs/configuration.md.")
    if path:
        data = resolve_file_paths(data, Path(path).resolve().parent)
    apply_overrides(data, overrides)
    return parse_config(data, f"The audit config {str(path)!r}" if path else "The audit settings")


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Set each ``"a.b.c": value`` of ``overrides`` in ``data`` (in place; None values are left
    out: a flag that was not given changes nothing). Returns ``data``."""
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        target = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise UserError(f"Cannot override {dotted!r}: {key!r} in the config is not a mapping.")
        target[leaf] = value
    return data
