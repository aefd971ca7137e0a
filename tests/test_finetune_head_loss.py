"""The hand-written backward passes of the train step: the fused LM-head cross-entropy
(:mod:`finetune.head_loss`) and the dense matmul (:func:`finetune.models.layers.matmul`).

Each is checked against a hand-computed example and against autodiff of the plain formula,
including through whole models of every family (the path the trainer takes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from finetune.head_loss import head_weighted_loss  # noqa: E402
from finetune.models import from_hf_config  # noqa: E402
from finetune.models.layers import matmul  # noqa: E402
from finetune.train import batch_loss, forward, weighted_loss  # noqa: E402
from tests.test_finetune_models import GPT2, LLAMA, T5  # noqa: E402


def test_head_loss_hand_example():
    # table = identity, so the logits are the hidden states themselves:
    # row 0 logits (0, 0), target 1: nll = ln 2,   d/dlogits = (1/2, -1/2)
    # row 1 logits (ln 3, 0), target 0: nll = -ln(3/4), d/dlogits = (3/4 - 1, 1/4) = (-1/4, 1/4)
    # row 2 has weight 0: no loss, no gradient. Mean over the 2 weighted rows.
    x = jnp.array([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]])
    table = jnp.eye(2)
    targets = jnp.array([1, 0, 1])
    weights = jnp.array([1.0, 1.0, 0.0])
    obj, m = head_weighted_loss(x, table, targets, weights, z_loss=0.0)
    assert float(obj) == pytest.approx((math.log(2.0) - math.log(0.75)) / 2, rel=1e-6)
    assert float(m["target_tokens"]) == 2.0 and float(m["z_loss"]) == 0.0
    gx = jax.grad(lambda x: head_weighted_loss(x, table, targets, weights, 0.0)[0])(x)
    np.testing.assert_allclose(gx, [[0.25, -0.25], [-0.125, 0.125], [0.0, 0.0]], atol=1e-7)
    # the table's gradient is x^T g: column j collects sum_t x_t * g_tj
    gt = jax.grad(lambda t: head_weighted_loss(x, t, targets, weights, 0.0)[0])(table)
    ln3 = math.log(3.0)
    np.testing.assert_allclose(gt, [[-0.125 * ln3, 0.0], [0.125 * ln3, 0.0]], atol=1e-7)
    # z-loss: log Z = ln 2 and ln 4 at the weighted rows -> mean of squares
    obj_z, mz = head_weighted_loss(x, table, targets, weights, z_loss=0.1)
    zl = (math.log(2.0) ** 2 + math.log(4.0) ** 2) / 2
    assert float(mz["z_loss"]) == pytest.approx(zl, rel=1e-6)
    assert float(obj_z) == pytest.approx(float(obj) + 0.1 * zl, rel=1e-6)


@pytest.mark.parametrize("z_loss", [0.0, 1e-2])
def test_head_loss_equals_autodiff_of_logits_loss(z_loss):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, 8)), jnp.float32)
    table = jnp.asarray(rng.normal(size=(11, 8)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 11, (2, 5)))
    weights = jnp.asarray(rng.integers(0, 2, (2, 5)), jnp.float32).at[0, 0].set(1.0)

    def fused(x, t):
        return head_weighted_loss(x, t, targets, weights, z_loss)[0]

    def plain(x, t):
        return weighted_loss(jnp.einsum("btd,vd->btv", x, t), targets, weights, z_loss)[0]

    assert float(fused(x, table)) == pytest.approx(float(plain(x, table)), rel=1e-6)
    for a, b in zip(jax.grad(fused, argnums=(0, 1))(x, table), jax.grad(plain, argnums=(0, 1))(x, table)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_matmul_gradient_equals_autodiff():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(3, 4, 6)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    probe = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)  # a non-trivial cotangent
    ours = jax.grad(lambda x, w: (matmul(x, w) * probe).sum(), argnums=(0, 1))(x, w)
    ref = jax.grad(lambda x, w: (jnp.dot(x, w) * probe).sum(), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(matmul(x, w), jnp.dot(x, w), rtol=1e-6)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # bfloat16 compute keeps the operand dtypes for the gradients
    gx, gw = jax.grad(lambda x, w: matmul(x, w).astype(jnp.float32).sum(), argnums=(0, 1))(
        x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
    assert gx.dtype == gw.dtype == jnp.bfloat16


def _decoder_batch(rng, b=2, t=6, vocab=50):
    ids = rng.integers(0, vocab, (b, t)).astype(np.int32)
    seg = np.array([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 1]], np.int32)[:b, :t]
    pos = np.array([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]], np.int32)[:b, :t]
    return {"input_ids": ids, "targets": np.roll(ids, -1, axis=1), "segment_ids": seg, "positions": pos,
            "weights": (seg > 0).astype(np.float32)}


def _t5_batch(rng, b=2, s=5, t=4, vocab=50):
    return {"encoder_input_ids": rng.integers(0, vocab, (b, s)).astype(np.int32),
            "decoder_input_ids": rng.integers(0, vocab, (b, t)).astype(np.int32),
            "targets": rng.integers(0, vocab, (b, t)).astype(np.int32),
            "encoder_segment_ids": np.ones((b, s), np.int32), "decoder_segment_ids": np.ones((b, t), np.int32),
            "encoder_positions": np.tile(np.arange(s, dtype=np.int32), (b, 1)),
            "decoder_positions": np.tile(np.arange(t, dtype=np.int32), (b, 1)),
            "weights": np.ones((b, t), np.float32)}


@pytest.mark.parametrize("hf,kind", [
    (LLAMA, "decoder"),
    ({**LLAMA, "tie_word_embeddings": False}, "decoder"),
    (GPT2, "decoder"),
    (T5, "t5"),
    ({**T5, "feed_forward_proj": "relu", "tie_word_embeddings": True}, "t5"),  # original T5: scaled tied head
])
def test_models_fused_loss_matches_logits_loss(hf, kind):
    """The trainer's path (hidden states -> fused head) gives the loss and parameter gradients
    of the plain path (logits -> weighted_loss) on every family, tied and untied heads."""
    _, model = from_hf_config(hf, seed=3)
    rng = np.random.default_rng(2)
    batch = {k: jnp.asarray(v) for k, v in (_t5_batch(rng) if kind == "t5" else _decoder_batch(rng)).items()}
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def fused(p):
        return batch_loss(nnx.merge(graphdef, p, rest), batch, kind, z_loss=1e-3)[0]

    def plain(p):
        logits = forward(nnx.merge(graphdef, p, rest), batch, kind)
        return weighted_loss(logits, batch["targets"], batch["weights"], 1e-3)[0]

    (la, ga), (lb, gb) = jax.jit(jax.value_and_grad(fused))(params), jax.jit(jax.value_and_grad(plain))(params)
    assert float(la) == pytest.approx(float(lb), rel=1e-6)
    for (path, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(ga), jax.tree_util.tree_leaves_with_path(gb)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
