"""Cross-entropy through the LM head, with a hand-written backward pass.

The objective is the one :func:`finetune.train.weighted_loss` defines (token-weighted mean
negative log-likelihood, optional z-loss of PaLM, Chowdhery et al. 2022), computed straight from
the final hidden states ``x [N, D]`` and the output table ``W [V, D]`` (the tied embedding or
the untied LM head): ``logits = x W^T``.

Why not let autodiff differentiate ``weighted_loss(x @ W.T, ...)``: for that graph XLA keeps the
``[N, V]`` logits alive until the backward pass, builds the ``[N, V]`` logit gradient twice (once
in each memory layout, because the two gradient matmuls want it differently laid out) and
writes a transposed copy of it for the table's gradient. With a 49k vocabulary these buffers are
the largest of the whole step. The gradient has a closed form,

    d obj / d logits_t = w_t / W_sum * ( softmax(logits_t) - onehot(y_t)
                                         + z_loss * 2 log Z_t * softmax(logits_t) ),

so the backward pass here recomputes the logits (one matmul, cheaper than keeping ``N x V``
floats), forms that gradient once, and writes ``d x = g W`` and ``d W^T = x^T g`` in the layout
the CPU matmul produces fastest. Measured by ``bench/finetune.py`` (docs/scaling.md); a hand
example and equality with autodiff on every model family are in
``tests/test_finetune_head_loss.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from finetune.models.layers import acc_dtype, transposed_for_dot


def _logits(x: jax.Array, table: jax.Array) -> jax.Array:
    return jnp.einsum("nd,vd->nv", x, table, preferred_element_type=acc_dtype(x.dtype))


@jax.custom_vjp
def head_sums(x: jax.Array, table: jax.Array, targets: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sum_t w_t * nll_t, sum_t w_t * (log Z_t)^2)`` for logits ``x @ table.T``.

    x: [N, D] (compute dtype); table: [V, D] (same dtype); targets: int [N]; weights: float [N]
    (not differentiated). Sums rather than means so the caller divides by the global target
    count once, whatever the sharding of N.
    """
    return _forward(x, table, targets, weights)[0]


def _forward(x, table, targets, weights):
    logits = _logits(x, table)
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    w = weights.astype(logits.dtype)
    sums = (((logz - picked) * w).sum(), (jnp.square(logz) * w).sum())
    return sums, (x, table, targets, weights, logz)


def _backward(residuals, cotangents):
    x, table, targets, weights, logz = residuals
    g_nll, g_z = cotangents
    logits = _logits(x, table)
    probs = jnp.exp(logits - logz[:, None])
    w = weights.astype(logits.dtype)
    onehot = jax.nn.one_hot(targets, table.shape[0], dtype=logits.dtype)
    # d/dlogits of w*nll is w*(p - onehot); of w*logZ^2 it is w*2*logZ*p
    g = (probs * (g_nll + 2.0 * g_z * logz)[:, None] - onehot * g_nll) * w[:, None]
    g = g.astype(x.dtype)
    acc = acc_dtype(x.dtype)
    dx = jnp.einsum("nv,vd->nd", g, table, preferred_element_type=acc).astype(x.dtype)
    # x^T g is [D, V] with V minor, the matmul's fast layout; the barrier keeps XLA from folding
    # the final transpose back into the dot (which would make it the slow transposed form)
    dtable_t = jnp.dot(transposed_for_dot(x), g, preferred_element_type=acc)
    if jax.default_backend() == "cpu":
        dtable_t = jax.lax.optimization_barrier(dtable_t)
    dtable = dtable_t.T.astype(table.dtype)
    return dx, dtable, None, None


head_sums.defvjp(_forward, _backward)


def head_weighted_loss(x: jax.Array, table: jax.Array, targets: jax.Array, weights: jax.Array,
                       z_loss: float) -> tuple[jax.Array, dict]:
    """Same contract as :func:`finetune.train.weighted_loss`, from hidden states instead of logits.

    x: [..., D] hidden states ready for the head (compute dtype); table: [V, D] in the same dtype.
    """
    d = x.shape[-1]
    nll_sum, z_sum = head_sums(x.reshape(-1, d), table, targets.reshape(-1), weights.reshape(-1))
    wsum = weights.sum()
    denom = jnp.maximum(wsum, 1.0)
    ce = nll_sum / denom
    zl = z_sum / denom
    obj = ce + z_loss * zl if z_loss else ce
    if not z_loss:
        zl = jnp.zeros((), jnp.float32)
    return obj, {"loss": ce, "z_loss": zl, "target_tokens": wsum}
