"""Detoxify-format toxicity classifiers (Hanu & Unitary team, 2020; github.com/unitaryai/detoxify).

A Detoxify checkpoint is a ``torch.save`` pickle of ``{"config": training config, "state_dict":
weights}``. ``config["arch"]["args"]`` names the transformers model class (e.g.
``BertForSequenceClassification``), the tokenizer class, the base model id (e.g.
``bert-base-uncased``) and ``num_classes``; ``config["dataset"]["args"]["classes"]`` names the
first outputs (Jigsaw names, renamed as Detoxify does: ``toxic`` -> ``toxicity``,
``severe_toxic`` -> ``severe_toxicity``, ``identity_hate`` -> ``identity_attack``). Detoxify
0.5 applies a sigmoid to every output for every variant (each attribute is an independent
probability, multi-label) and reports the first ``len(classes)`` outputs; we do the same, so our
scores equal ``Detoxify.predict`` (tested to 1e-5).

Variants (``detoxify:<variant>``): original (BERT, Jigsaw 2018), unbiased (RoBERTa, Jigsaw
unintended bias 2019), multilingual (XLM-R, Jigsaw 2020), original-small and unbiased-small
(ALBERT). Online, the official release file is downloaded once into torch's hub cache, as
Detoxify itself does. Offline, pass ``checkpoint=PATH`` and ``huggingface_config_path=DIR``
(a directory with the base model's ``config.json`` and tokenizer files).

Safety: a checkpoint is a pickle, and unpickling can run arbitrary code. The rule:

1. Every checkpoint is opened with ``torch.load(weights_only=True)``, torch's restricted
   unpickler, which builds only tensors, storages, dicts, ``OrderedDict``, lists, tuples,
   strings and numbers and cannot call anything else. That is all a Detoxify release holds
   (``config`` of plain dicts/lists/strings/ints, ``state_dict`` an ``OrderedDict`` of
   tensors), so :data:`SAFE_GLOBALS`, the extra types we allow-list on top of torch's own, is
   empty.
2. Provenance, before anything is read: the file's sha256 must equal ``checkpoint_sha256``
   when that option is given (else an error); without a pin the file is opened only with
   ``trust_checkpoint: true``, and the digest is recorded in the scorer identity either way.
3. Code in a pickle runs only when the user trusts that exact file: when the safe loader
   rejects a checkpoint (it references other Python objects, i.e. could run code), a full
   unpickle (``weights_only=False``) happens if and only if ``checkpoint_sha256`` is given,
   equals the sha256 of the bytes being unpickled (they are read once, hashed and unpickled
   from memory, so the file cannot change in between), and ``trust_checkpoint`` is the boolean
   ``true``. In every other case nothing in the pickle runs and the user gets a UserError
   saying the checkpoint contains code or untrusted objects and how to trust it.

Options are validated strictly (:mod:`probes.scorers._options`): ``trust_checkpoint: 'false'``,
``'true'`` or ``1`` are errors, never read as a boolean.

We found no upstream-published table of full sha256 digests for the release files (their names
carry only an 8-hex-digit prefix, which torch.hub checks but which is far too short to pin
against tampering), so no digest is built in: pin the one printed in the refusal or in the
scorer identity of a trusted first run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import logging
import os
import re
from pathlib import Path
from typing import Sequence

from rai_audit.errors import ModelLoadError, UserError
from rai_audit.hashing import combine, sha256_file
from rai_audit.scoring import Scorer, ScorerIdentity, TextScore

from probes.scorers._inference import SequenceClassifierRunner, model_max_length, sigmoid
from probes.scorers._options import check_threshold

log = logging.getLogger(__name__)

DOWNLOAD_URL = "https://github.com/unitaryai/detoxify/releases/download/"
#: variant -> (release file path under DOWNLOAD_URL, what the model is)
VARIANTS: dict[str, tuple[str, str]] = {
    "original": ("v0.1-alpha/toxic_original-c1212f89.ckpt",
                 "bert-base-uncased trained on the Jigsaw Toxic Comment Classification Challenge"),
    "unbiased": ("v0.3-alpha/toxic_debiased-c7548aa0.ckpt",
                 "roberta-base trained on the Jigsaw Unintended Bias in Toxicity Classification data"),
    "multilingual": ("v0.4-alpha/multilingual_debiased-0b549669.ckpt",
                     "xlm-roberta-base trained on the Jigsaw Multilingual Toxic Comment Classification data"),
    "original-small": ("v0.1.2/original-albert-0e1d6498.ckpt",
                       "albert-base-v2 trained on the Jigsaw Toxic Comment Classification Challenge"),
    "unbiased-small": ("v0.1.2/unbiased-albert-c8519128.ckpt",
                       "albert-base-v2 trained on the Jigsaw Unintended Bias in Toxicity Classification data"),
}
#: Types allow-listed for ``torch.load(weights_only=True)`` on top of torch's defaults (tensors,
#: storages, ``OrderedDict``, containers and scalars). A Detoxify checkpoint needs none.
SAFE_GLOBALS: tuple = ()
#: Full sha256 of the official release files, where published upstream. None are (see module
#: docstring); the table exists so that a digest, once verified, is one line away.
OFFICIAL_SHA256: dict[str, str] = {}

RENAMES = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}
_MODEL_CLASS = re.compile(r"^[A-Za-z0-9]+ForSequenceClassification$")
_TOKENIZER_CLASS = re.compile(r"^[A-Za-z0-9]+Tokenizer(Fast)?$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_URL_HASH = re.compile(r"-([a-f0-9]+)\.")


def variant_url(variant: str) -> str:
    return DOWNLOAD_URL + VARIANTS[variant][0]


def _refusal(path: Path, digest: str) -> str:
    return (
        f"Refusing to load the Detoxify checkpoint {path} because its sha256 is not pinned. "
        "Detoxify checkpoints are Python pickles; rai-audit opens them with torch's weights-only "
        "loader, which never runs code in the file, and records which exact bytes produced "
        f"every score. This file's sha256 is {digest}; if you trust where it came from, pin it "
        f"with the scorer option checkpoint_sha256={digest} (in audit.yaml under scorer "
        "options), or pass trust_checkpoint=True (trust_checkpoint: true in YAML) to load it "
        "once without a pin (the digest is then recorded in the run's scorer identity)."
    )


def _untrusted(path: Path, digest: str, what: str, pinned: bool, trusted: bool) -> str:
    missing = [x for x, ok in ((f"checkpoint_sha256: {digest}", pinned), ("trust_checkpoint: true", trusted)) if not ok]
    hint = f" (this run lacks {' and '.join(missing)})" if missing else ""
    return (
        f"The Detoxify checkpoint {path} (sha256 {digest}) contains code or untrusted objects: "
        f"{what}, beyond the tensors and plain data a Detoxify checkpoint holds. Unpickling "
        "them can run code from the file, so rai-audit did not; nothing in it was executed. If you "
        "know its origin and trust it, allow a full unpickle of exactly this file by giving "
        f"both scorer options checkpoint_sha256: {digest} and trust_checkpoint: true (a YAML "
        f"boolean, not a string){hint}. Otherwise use the official release file or re-save the "
        "checkpoint as {'config': ..., 'state_dict': ...} with plain data only."
    )


def _check_pin(path: Path, digest: str, pin: str | None, trust: bool) -> None:
    if pin is not None:
        if digest != pin.lower():
            raise ModelLoadError(
                f"The Detoxify checkpoint {path} has sha256 {digest}, but checkpoint_sha256 pins "
                f"{pin.lower()}. The file is not the one you pinned (corrupt, replaced or a "
                "different variant). Re-download it, or correct the pin if the file is right."
            )
        return
    if trust is not True:
        raise UserError(_refusal(path, digest))
    log.warning("Loading unpinned Detoxify checkpoint %s (sha256 %s) because trust_checkpoint=True; "
                "pin it with checkpoint_sha256=%s", path, digest, digest)


def _download(variant: str) -> Path:
    """The official release file in torch's hub cache, downloading it when missing."""
    import torch.hub

    url = variant_url(variant)
    dest = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = _URL_HASH.search(os.path.basename(url))
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=prefix.group(1) if prefix else None)
    except Exception as e:  # URLError, HTTPError, RuntimeError (hash prefix mismatch), OSError
        raise ModelLoadError(
            f"Could not download the Detoxify {variant} checkpoint from {url} ({e}). Offline, "
            f"download it elsewhere and pass checkpoint=PATH together with "
            "huggingface_config_path=DIR (a local copy of the base model's config and tokenizer)."
        ) from None
    return dest


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _unsafe_reason(e: Exception) -> str:
    """What torch's weights-only unpickler refused, in a few words."""
    text = str(e)
    found = _GLOBAL.findall(text)
    if found:
        return "the pickle references " + ", ".join(dict.fromkeys(found))
    detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
    lines = [l.strip() for l in detail.splitlines() if l.strip()]
    return "torch's weights-only loader rejected it" + (f" ({lines[0]})" if lines else "")


def _torch_load(path: Path, digest: str, trusted_sha256: str | None, trust_checkpoint: bool) -> dict:
    """Load ``path``: weights-only always first; a full unpickle only for a trusted digest.

    ``trusted_sha256`` is the user's own ``checkpoint_sha256`` (never a built-in pin): the full
    unpickle needs it to equal the sha256 of the exact bytes unpickled *and*
    ``trust_checkpoint is True``. Anything else that the safe loader rejects is a UserError.
    """
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unsafe_reason(e)
    except Exception as e:
        raise ModelLoadError(f"Cannot read the Detoxify checkpoint {path}: {e}. Is it a complete "
                             "torch checkpoint file?") from None
    pinned = trusted_sha256 is not None and trusted_sha256.lower() == digest
    trusted = trust_checkpoint is True
    if not (pinned and trusted):
        raise UserError(_untrusted(path, digest, reason, pinned, trusted))
    data = path.read_bytes()  # unpickle exactly the bytes whose digest the user trusts
    if hashlib.sha256(data).hexdigest() != trusted_sha256.lower():
        raise ModelLoadError(f"The Detoxify checkpoint {path} changed while it was being loaded "
                             "(its sha256 no longer matches checkpoint_sha256); not unpickling it.")
    log.warning("%s holds objects the safe loader does not accept (%s); unpickling it fully because "
                "checkpoint_sha256 matches and trust_checkpoint=True", path, reason)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelLoadError(f"Cannot read the Detoxify checkpoint {path}: {e}.") from None


def parse_checkpoint(loaded: object, path: Path) -> tuple[dict, list[str], dict]:
    """(arch args, attribute names, state dict), validating the Detoxify layout."""
    try:
        arch = dict(loaded["config"]["arch"]["args"])  # type: ignore[index]
        classes = list(loaded["config"]["dataset"]["args"]["classes"])  # type: ignore[index]
        state = loaded["state_dict"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ModelLoadError(
            f"{path} is not a Detoxify checkpoint: it needs a dict with 'state_dict' and 'config' "
            "(config.arch.args with model_type, model_name, tokenizer_name, num_classes, and "
            "config.dataset.args.classes), as Detoxify's releases have."
        ) from None
    for key in ("model_type", "model_name", "tokenizer_name", "num_classes"):
        if key not in arch:
            raise ModelLoadError(f"{path}: config.arch.args lacks {key!r}; not a Detoxify checkpoint.")
    if not _MODEL_CLASS.match(str(arch["model_name"])) or not _TOKENIZER_CLASS.match(str(arch["tokenizer_name"])):
        raise ModelLoadError(
            f"{path}: model class {arch['model_name']!r} / tokenizer class {arch['tokenizer_name']!r} "
            "are not transformers sequence-classification and tokenizer class names."
        )
    names = [RENAMES.get(str(c), str(c)) for c in classes]
    if not names or len(names) > int(arch["num_classes"]):
        raise ModelLoadError(f"{path}: {len(names)} class names for {arch['num_classes']} outputs.")
    return arch, names, state


def _dir_digest(path: Path) -> str:
    return combine({p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file()})


class DetoxifyScorer(Scorer):
    """Scores texts with a Detoxify-format checkpoint: sigmoid probability per attribute."""

    def __init__(
        self,
        variant: str = "original",
        *,
        checkpoint: str | os.PathLike | None = None,
        huggingface_config_path: str | os.PathLike | None = None,
        checkpoint_sha256: str | None = None,
        trust_checkpoint: bool = False,
        threshold: float = 0.5,
        operator: str = ">=",
        device: str = "cpu",
        batch_size: int = 64,
        max_batch_tokens: int = 8192,
    ):
        if variant not in VARIANTS:
            raise UserError(
                f"Unknown Detoxify variant {variant!r}. Known: {', '.join(VARIANTS)} "
                "(e.g. --scorer detoxify:original)."
            )
        threshold, operator = check_threshold(threshold, operator)
        if not isinstance(trust_checkpoint, bool):  # also checked by the options schema
            raise UserError(
                f"trust_checkpoint={trust_checkpoint!r} is not a boolean. Write trust_checkpoint: "
                "true or false (unquoted in YAML); a string or a number is never read as trust."
            )
        if checkpoint_sha256 is not None and not _HEX64.match(str(checkpoint_sha256)):
            raise UserError(
                f"checkpoint_sha256={checkpoint_sha256!r} is not a sha256 hex digest (64 hex "
                "characters). Compute it with `sha256sum CHECKPOINT`."
            )
        pin = checkpoint_sha256 or (OFFICIAL_SHA256.get(variant) if checkpoint is None else None)
        config_dir = Path(huggingface_config_path).expanduser() if huggingface_config_path else None
        if config_dir is not None and not (config_dir / "config.json").is_file():
            raise UserError(
                f"huggingface_config_path {config_dir} has no config.json. It must be a local "
                "directory with the base model's config.json and tokenizer files (e.g. saved with "
                "save_pretrained from bert-base-uncased for detoxify:original)."
            )

        if checkpoint is not None:
            path = Path(checkpoint).expanduser()
            if not path.is_file():
                raise UserError(
                    f"Detoxify checkpoint {path} does not exist. Give the path of a downloaded "
                    f"release file (e.g. {os.path.basename(variant_url(variant))})."
                )
            source = None
        else:
            if pin is None and trust_checkpoint is not True:
                raise UserError(
                    f"The Detoxify {variant} checkpoint ({variant_url(variant)}) is a Python pickle "
                    "whose full sha256 is not published, so rai-audit will not download and open it "
                    "unless you pin its sha256 with the scorer option checkpoint_sha256=<digest> or "
                    "pass trust_checkpoint=True once (the digest is then recorded in the run's "
                    "scorer identity so you can pin it afterwards). Either way it is opened with "
                    "torch's weights-only loader, which does not run code from the file."
                )
            path = _download(variant)
            source = variant_url(variant)
        digest = sha256_file(path)
        _check_pin(path, digest, pin, trust_checkpoint)

        loaded = _torch_load(path, digest, checkpoint_sha256, trust_checkpoint)
        arch, names, state = parse_checkpoint(loaded, path)
        model, tokenizer = self._build(arch, state, config_dir)
        max_length = model_max_length(tokenizer, model.config)
        self._runner = SequenceClassifierRunner(
            model.to(device), tokenizer, max_length=max_length, batch_size=batch_size,
            max_batch_tokens=max_batch_tokens, device=device,
        )
        self.batch_size = batch_size
        self.attribute_names = names
        self.identity = ScorerIdentity(
            name=f"detoxify:{variant}",
            version=VARIANTS[variant][0].split("/")[0],
            checkpoint_sha256=digest,
            threshold=threshold,
            operator=operator,  # type: ignore[arg-type]
            primary="toxicity" if "toxicity" in names else names[0],
            attributes=tuple(names),
            max_length=max_length,
            length_unit="tokens",
            description=(
                f"Detoxify {variant}: {VARIANTS[variant][1]}; multi-label, sigmoid probability per "
                "attribute (as Detoxify.predict)."
            ),
            extra={
                "format": "detoxify",
                "source_url": source,
                "model_class": arch["model_name"],
                "tokenizer_class": arch["tokenizer_name"],
                "base_model": arch["model_type"] if config_dir is None else None,
                "hf_config_sha256": _dir_digest(config_dir) if config_dir is not None else None,
                "num_outputs": int(arch["num_classes"]),
                "activation": "sigmoid",
                "transformers": importlib.metadata.version("transformers"),
                "torch": importlib.metadata.version("torch"),
            },
        )

    @staticmethod
    def _build(arch: dict, state: dict, config_dir: Path | None):
        """Model and tokenizer as Detoxify builds them, from a local dir or the base model id."""
        import transformers

        model_class = getattr(transformers, arch["model_name"], None)
        tokenizer_class = getattr(transformers, arch["tokenizer_name"], None)
        if model_class is None or tokenizer_class is None:
            raise ModelLoadError(
                f"This transformers ({transformers.__version__}) has no {arch['model_name']} or "
                f"{arch['tokenizer_name']}, which the checkpoint needs."
            )
        source = str(config_dir) if config_dir is not None else str(arch["model_type"])
        local = config_dir is not None
        try:
            config = model_class.config_class.from_pretrained(
                source, num_labels=int(arch["num_classes"]), local_files_only=local
            )
            model = model_class.from_pretrained(None, config=config, state_dict=state)
            tokenizer = tokenizer_class.from_pretrained(source, local_files_only=local)
        except OSError as e:
            raise ModelLoadError(
                f"Cannot load the config/tokenizer of {source!r} for this Detoxify checkpoint "
                f"({str(e).splitlines()[0]}). Offline, pass huggingface_config_path=DIR with a local "
                f"copy of {arch['model_type']}'s config.json and tokenizer files."
            ) from None
        return model, tokenizer

    # -- scoring ------------------------------------------------------------------------------
    def score(self, texts: Sequence[str]) -> list[TextScore]:
        """All texts at once: the runner sorts by token count and batches within budgets."""
        if len(texts) == 0:
            return []
        out = self._runner.logits(texts)
        probs = sigmoid(out.values[:, : len(self.attribute_names)])
        return [
            TextScore(scores={n: float(p) for n, p in zip(self.attribute_names, row)}, truncated=t)
            for row, t in zip(probs, out.truncated)
        ]

    def score_batch(self, texts: Sequence[str]) -> list[TextScore]:
        return self.score(texts)

    @property
    def max_length(self) -> int:
        return self._runner.max_length
