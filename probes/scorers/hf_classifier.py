"""Any Hugging Face sequence-classification model as a toxicity scorer.

Reference: ``hf:org/name`` or ``hf:org/name@revision`` (downloaded by huggingface_hub when
online; a clear error offline unless already cached), or a local directory saved with
``save_pretrained``. Weights load without running code from the files: safetensors are
preferred, ``.bin`` weights load only through ``torch.load(weights_only=True)`` (a ``.bin``
that holds anything but tensors and plain data is refused with a UserError; there is no option
to unpickle it fully, convert it to safetensors instead), and ``trust_remote_code`` is always
False, so a repository's own Python files never run.

Probabilities follow the model's training objective, read from ``config.problem_type``:
``multi_label_classification`` -> an independent sigmoid per label; otherwise (single-label or
unset with two or more labels) -> softmax across labels; one output -> sigmoid. The
``activation=`` option overrides this when a config is wrong.

Which labels mean "toxic" is configuration, not guesswork: ``toxic_labels=[...]`` (names or
indices). Without it, a label literally named toxic/toxicity/hate/hateful/offensive/abusive is
used if exactly one exists; otherwise the scorer refuses and lists the labels. The primary
attribute (``primary_name``, default ``"toxicity"``) is P(toxic): under softmax the sum of the
toxic labels' probabilities (mutually exclusive classes), under sigmoid the maximum over them
(a lower bound of P(any), exact for one label). Every label's own probability is reported too.
"""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rai_audit.errors import ModelLoadError, UserError
from rai_audit.hashing import combine, sha256_file
from rai_audit.scoring import Scorer, ScorerIdentity, TextScore

from probes.scorers._inference import SequenceClassifierRunner, model_max_length, sigmoid, softmax
from probes.scorers._options import check_threshold

AUTO_TOXIC_NAMES = {"toxic", "toxicity", "hate", "hateful", "offensive", "abusive"}
_WEIGHT_FILE = re.compile(r".*\.(safetensors|bin)$")


def resolve_reference(ref: str, revision: str | None = None) -> tuple[Path, str, str]:
    """(local directory, identity name, version) for ``hf:org/name[@rev]`` or a local directory."""
    if ref.startswith("hf:"):
        repo = ref[3:]
        if "@" in repo:
            repo, _, rev = repo.partition("@")
            revision = revision or rev
        if not re.match(r"^[\w.-]+(/[\w.-]+)?$", repo):
            raise UserError(f"{ref!r} is not a Hugging Face model id; use hf:org/name or hf:org/name@revision.")
        from huggingface_hub import snapshot_download

        try:
            path = snapshot_download(
                repo, revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.bin"],
            )
        except Exception as e:  # offline, unknown repo, gated model
            raise ModelLoadError(
                f"Cannot fetch the Hugging Face model {repo!r}{'@' + revision if revision else ''} "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Check the id and "
                "your network; offline, give a local directory saved with save_pretrained instead."
            ) from None
        path = Path(path)
        return path, f"hf:{repo}", path.name  # snapshot dir name is the commit hash
    path = Path(ref).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise UserError(
            f"Scorer model {ref!r} is neither hf:org/name nor a local model directory with a "
            "config.json. Give a Hugging Face reference like hf:org/name or a directory saved "
            "with save_pretrained."
        )
    return path, f"local:{path.resolve().name}", "local"


def _weights_digest(path: Path) -> tuple[str, str]:
    weights = [p for p in sorted(path.iterdir()) if p.is_file() and _WEIGHT_FILE.match(p.name)]
    if any(p.suffix == ".safetensors" for p in weights):
        weights = [p for p in weights if p.suffix == ".safetensors"]
    if not weights:
        raise ModelLoadError(f"{path} has no model weights (*.safetensors or *.bin).")
    other = [p for p in sorted(path.iterdir()) if p.is_file() and p not in weights]
    return combine({p.name: sha256_file(p) for p in weights}), combine({p.name: sha256_file(p) for p in other})


class HFClassifierScorer(Scorer):
    """A transformers ``AutoModelForSequenceClassification`` with a configurable toxic label set."""

    def __init__(
        self,
        ref: str | os.PathLike,
        *,
        toxic_labels: Sequence[str | int] | str | None = None,
        activation: str | None = None,
        primary_name: str = "toxicity",
        revision: str | None = None,
        threshold: float = 0.5,
        operator: str = ">=",
        device: str = "cpu",
        batch_size: int = 64,
        max_batch_tokens: int = 8192,
        max_length: int | None = None,
    ):
        threshold, operator = check_threshold(threshold, operator)
        path, name, version = resolve_reference(str(ref), revision)
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True, trust_remote_code=False, weights_only=True,
            )
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        except pickle.UnpicklingError:
            raise ModelLoadError(
                f"The weights of {ref} contain code or untrusted objects: torch's weights-only "
                "loader refused a pickled .bin file, and rai-audit never unpickles such a file "
                "fully, so nothing in it was executed. Use safetensors weights (model.safetensors), "
                "converting the .bin where you trust its origin."
            ) from None
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(
                f"Cannot load {ref} as a sequence-classification model "
                f"({str(e).splitlines()[0] if str(e) else type(e).__name__}). It needs config.json, "
                "weights and tokenizer files of a *ForSequenceClassification model."
            ) from None
        n = int(config.num_labels)
        labels = [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(n)]
        if len(set(labels)) != n:
            raise ModelLoadError(f"{ref}: duplicate label names {labels} in config.id2label.")
        self.activation = self._activation(config, activation, n)
        self.toxic_indices = self._toxic_indices(toxic_labels, labels, ref)
        self.labels = labels
        if primary_name in labels and [labels.index(primary_name)] != self.toxic_indices:
            raise UserError(
                f"{ref}: the label {primary_name!r} exists but is not the toxic label set, so it "
                "cannot also name P(toxic). Pass primary_name= another name (e.g. 'toxic_any')."
            )
        self.primary_name = primary_name
        limit = model_max_length(tokenizer, config)
        if max_length is not None:
            limit = min(limit, int(max_length))
        self._runner = SequenceClassifierRunner(
            model.to(device), tokenizer, max_length=limit, batch_size=batch_size,
            max_batch_tokens=max_batch_tokens, device=device,
        )
        self.batch_size = batch_size
        weights_sha, files_sha = _weights_digest(path)
        attributes = tuple(dict.fromkeys([primary_name, *labels]))
        self.identity = ScorerIdentity(
            name=name,
            version=version,
            checkpoint_sha256=weights_sha,
            threshold=threshold,
            operator=operator,  # type: ignore[arg-type]
            primary=primary_name,
            attributes=attributes,
            max_length=limit,
            length_unit="tokens",
            description=(
                f"Hugging Face {type(model).__name__}; {primary_name} = "
                f"{'sum' if self.activation == 'softmax' else 'max'} of {self.activation} "
                f"probabilities of labels {[labels[i] for i in self.toxic_indices]}."
            ),
            extra={
                "format": "hf-sequence-classification",
                "labels": labels,
                "toxic_labels": [labels[i] for i in self.toxic_indices],
                "activation": self.activation,
                "config_sha256": files_sha,
                "transformers": importlib.metadata.version("transformers"),
                "torch": importlib.metadata.version("torch"),
            },
        )

    @staticmethod
    def _activation(config, override: str | None, n: int) -> str:
        if override is not None:
            if override not in ("sigmoid", "softmax"):
                raise UserError(f"activation={override!r}: use 'sigmoid' or 'softmax'.")
            if override == "softmax" and n < 2:
                raise UserError("activation='softmax' needs at least two labels; this model has one output.")
            return override
        if n == 1 or getattr(config, "problem_type", None) == "multi_label_classification":
            return "sigmoid"
        return "softmax"

    @staticmethod
    def _toxic_indices(toxic_labels, labels: list[str], ref) -> list[int]:
        if toxic_labels is None:
            found = [i for i, l in enumerate(labels) if l.lower() in AUTO_TOXIC_NAMES]
            if len(found) == 1:
                return found
            if len(labels) == 1:
                return [0]
            raise UserError(
                f"Scorer {ref}: cannot tell which label means toxic among {labels}. Pass "
                "toxic_labels=[...] with label names or indices (e.g. toxic_labels=['LABEL_1'])."
            )
        if isinstance(toxic_labels, (str, int)):
            toxic_labels = [toxic_labels]
        out = []
        for t in toxic_labels:
            if isinstance(t, int) or (isinstance(t, str) and t not in labels and t.isdigit()):
                i = int(t)
                if not 0 <= i < len(labels):
                    raise UserError(f"Scorer {ref}: toxic label index {i} out of range for labels {labels}.")
            elif t in labels:
                i = labels.index(t)
            else:
                raise UserError(f"Scorer {ref}: toxic label {t!r} is not one of {labels}.")
            if i not in out:
                out.append(i)
        if not out:
            raise UserError(f"Scorer {ref}: toxic_labels is empty; name at least one of {labels}.")
        return out

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits) if self.activation == "sigmoid" else softmax(logits)

    def score(self, texts: Sequence[str]) -> list[TextScore]:
        if len(texts) == 0:
            return []
        out = self._runner.logits(texts)
        probs = self.probabilities(out.values)
        tox = probs[:, self.toxic_indices]
        primary = tox.sum(axis=1) if self.activation == "softmax" else tox.max(axis=1)
        primary = np.clip(primary, 0.0, 1.0)
        result = []
        for row, p, t in zip(probs, primary, out.truncated):
            scores = {self.primary_name: float(p)}
            scores.update({l: float(v) for l, v in zip(self.labels, row) if l != self.primary_name})
            result.append(TextScore(scores=scores, truncated=t))
        return result

    def score_batch(self, texts: Sequence[str]) -> list[TextScore]:
        return self.score(texts)
