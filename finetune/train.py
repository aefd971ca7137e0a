"""The optimiser, the loss and the jitted train step.

Recipes (Chung et al. 2022, Appendix E; the T5X Flan-T5 gin files; common decoder practice):

- decoders: AdamW, linear warmup then cosine decay to ``min_lr_ratio * lr``;
- T5: Adafactor at a constant learning rate (``optimizer: auto`` and ``schedule: auto`` pick
  these by the model's layout, :class:`finetune.models.family.Layout`);
- global-norm gradient clipping (``grad_clip``), optional z-loss (PaLM, Chowdhery et al. 2022:
  ``z_loss * log(Z)^2`` keeps the softmax normaliser near 1 in low precision).

Loss, on packed rows, averaged over target tokens of the whole (global) batch:

    CE = - sum_t w_t * log softmax(logits_t)[y_t] / sum_t w_t

``w_t`` is 1 on target tokens only (see :mod:`finetune.packing`). The sum is over the global
batch, so any data/fsdp split of the batch computes the same number. For the models of
:mod:`finetune.models` it is computed from the final hidden states by
:mod:`finetune.head_loss` (same numbers, a hand-written backward pass that is cheaper than
differentiating through the logits); other modules go through :func:`weighted_loss`.

The step is functional: parameters are split off the NNX module (``nnx.split``), the
(params, optimizer state) pair is the train state, and ``jax.jit`` compiles one step with the
mesh shardings from :mod:`finetune.sharding`. ``dtype: bfloat16`` keeps fp32 master weights and
optimizer state and casts a copy of the weights to bf16 for the forward/backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from finetune.config import FinetuneConfig
from finetune.head_loss import head_weighted_loss
from finetune.models.family import Layout
from finetune.models.registry import get_layout


def resolve_optimizer(cfg: FinetuneConfig, kind: str | Layout) -> tuple[str, str]:
    """(optimizer, schedule) after ``auto``: the layout's default optimizer (AdamW for decoders,
    Adafactor for T5), with cosine after AdamW and constant after Adafactor."""
    opt = cfg.optimizer if cfg.optimizer != "auto" else get_layout(kind).default_optimizer
    sched = cfg.schedule if cfg.schedule != "auto" else ("constant" if opt == "adafactor" else "cosine")
    return opt, sched


def lr_schedule(cfg: FinetuneConfig, kind: str, total_steps: int) -> optax.Schedule:
    _, sched = resolve_optimizer(cfg, kind)
    warm = min(cfg.warmup_steps, total_steps)
    if sched == "constant":
        if warm == 0:
            return optax.constant_schedule(cfg.lr)
        return optax.join_schedules(
            [optax.linear_schedule(0.0, cfg.lr, warm), optax.constant_schedule(cfg.lr)], [warm]
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.lr, warmup_steps=warm,
        decay_steps=max(total_steps, warm + 1), end_value=cfg.lr * cfg.min_lr_ratio,
    )


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """Scale all gradients by ``min(1, max_norm / ||g||)`` (global L2 norm over the tree).

    The same rule as ``optax.clip_by_global_norm``, which divides every element by the norm;
    here one scalar factor multiplies each element, which XLA folds into the optimizer's own
    elementwise pass. The per-element division made XLA:CPU write a clipped copy of every
    gradient first (one more pass over all parameters: 4% of a SmolLM2-135M step)."""

    def init(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        del params
        norm = optax.tree.norm(updates)
        scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(init, update)


def make_optimizer(cfg: FinetuneConfig, kind: str, total_steps: int) -> optax.GradientTransformation:
    opt, _ = resolve_optimizer(cfg, kind)
    sched = lr_schedule(cfg, kind, total_steps)
    parts: list[optax.GradientTransformation] = []
    if cfg.grad_clip:
        parts.append(clip_by_global_norm(cfg.grad_clip))
    if opt == "adamw":
        parts.append(optax.adamw(sched, b1=cfg.b1, b2=cfg.b2, eps=1e-8, weight_decay=cfg.weight_decay))
    else:
        # T5X's Flan-T5 recipe: factored second moments, no first moment, no relative step.
        parts.append(optax.adafactor(learning_rate=sched, multiply_by_parameter_scale=False,
                                     weight_decay_rate=cfg.weight_decay or None))
    return optax.chain(*parts)


def token_losses(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(negative log-likelihood, log Z) per position, in fp32."""
    logits = logits.astype(jnp.float32)
    logz = jax.nn.logsumexp(logits, axis=-1)
    # A one-hot product rather than take_along_axis: its gradient is an elementwise op that XLA
    # fuses, where the gather's gradient is a scatter (slow on CPU and TPU).
    onehot = jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype)
    picked = (logits * onehot).sum(axis=-1)
    return logz - picked, logz


def weighted_loss(logits: jax.Array, targets: jax.Array, weights: jax.Array, z_loss: float) -> tuple[jax.Array, dict]:
    """Token-weighted mean CE (+ z-loss); returns (objective, metrics)."""
    nll, logz = token_losses(logits, targets)
    denom = jnp.maximum(weights.sum(), 1.0)
    ce = (nll * weights).sum() / denom
    obj = ce
    zl = jnp.zeros((), jnp.float32)
    if z_loss:
        zl = (jnp.square(logz) * weights).sum() / denom
        obj = ce + z_loss * zl
    return obj, {"loss": ce, "z_loss": zl, "target_tokens": weights.sum()}


def _model_inputs(batch: dict[str, jax.Array], kind: str | Layout, dropout_rng: jax.Array | None) -> tuple[tuple, dict]:
    """(positional, keyword) arguments of the model call (and ``hidden_states``) for a packed batch.

    With ``dropout_rng`` the model runs with dropout (its config's rates) keyed by it."""
    extra = {"deterministic": True} if dropout_rng is None else {"deterministic": False, "dropout_rng": dropout_rng}
    return get_layout(kind).model_inputs(batch, extra)


def forward(model: nnx.Module, batch: dict[str, jax.Array], kind: str, dropout_rng: jax.Array | None = None) -> jax.Array:
    """Logits for a packed batch, with the model call the models half defines."""
    args, kwargs = _model_inputs(batch, kind, dropout_rng)
    return model(*args, **kwargs)


def batch_loss(model: nnx.Module, batch: dict[str, jax.Array], kind: str, z_loss: float,
               dropout_rng: jax.Array | None = None) -> tuple[jax.Array, dict]:
    """The training objective of one packed batch, and its metrics.

    Models that expose their LM head (``hidden_states`` + ``head_operands``: every family in
    :mod:`finetune.models`) go through :func:`finetune.head_loss.head_weighted_loss`, which
    never differentiates through a ``[tokens, vocab]`` logits tensor; any other NNX module with
    the call contract goes through logits and :func:`weighted_loss`. Both compute the same
    numbers (tested)."""
    if hasattr(model, "head_operands"):
        args, kwargs = _model_inputs(batch, kind, dropout_rng)
        x, table = model.head_operands(model.hidden_states(*args, **kwargs))
        return head_weighted_loss(x, table, batch["targets"], batch["weights"], z_loss)
    logits = forward(model, batch, kind, dropout_rng)
    return weighted_loss(logits, batch["targets"], batch["weights"], z_loss)


def _cast_floats(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


@dataclass
class TrainState:
    params: Any  # nnx.State of nnx.Param leaves (fp32 master weights)
    opt_state: Any
    step: int


class Trainer:
    """Owns the model split, the optimiser and the compiled step.

    ``shardings`` (from :func:`finetune.sharding.train_shardings`) place params, optimizer state
    and batches on the mesh; None runs unsharded on the default device.
    """

    def __init__(
        self, model: nnx.Module, kind: str, tx: optax.GradientTransformation, *,
        z_loss: float = 0.0, compute_dtype: str = "float32", dropout_seed: int | None = None,
    ):
        self.kind = kind
        self.tx = tx
        self.z_loss = float(z_loss)
        self.compute_dtype = jnp.bfloat16 if compute_dtype == "bfloat16" else jnp.float32
        # Dropout keys are a function of (seed, step), so a resumed run drops the same units.
        self.dropout_seed = dropout_seed
        self.graphdef, params, self.rest = nnx.split(model, nnx.Param, ...)
        self.params = params
        self._step_fn: Callable | None = None

    # -- the pure functions ----------------------------------------------------------------------
    def loss(self, params: Any, batch: dict[str, jax.Array], step: jax.Array | None = None) -> tuple[jax.Array, dict]:
        if self.compute_dtype != jnp.float32:
            params = _cast_floats(params, self.compute_dtype)
        model = nnx.merge(self.graphdef, params, self.rest)
        rng = None
        if self.dropout_seed is not None and step is not None:
            rng = jax.random.fold_in(jax.random.key(self.dropout_seed), step)
        return batch_loss(model, batch, self.kind, self.z_loss, rng)

    def _train_step(self, params: Any, opt_state: Any, batch: dict[str, jax.Array], step: jax.Array):
        (_, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(params, batch, step)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return params, opt_state, metrics

    # -- compiled entry points -----------------------------------------------------------------
    def init_state(self, shardings: Any | None = None) -> TrainState:
        params = self.params
        if shardings is not None:
            params = jax.device_put(params, shardings.params)
            opt_state = jax.jit(self.tx.init, out_shardings=shardings.opt_state)(params)
        else:
            opt_state = jax.jit(self.tx.init)(params)
        return TrainState(params, opt_state, 0)

    def compile(self, shardings: Any | None = None) -> None:
        if shardings is None:
            self._step_fn = jax.jit(self._train_step, donate_argnums=(0, 1))
        else:
            self._step_fn = jax.jit(
                self._train_step,
                in_shardings=(shardings.params, shardings.opt_state, shardings.batch, shardings.replicated),
                out_shardings=(shardings.params, shardings.opt_state, shardings.replicated),
                donate_argnums=(0, 1),
            )

    def step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
        if self._step_fn is None:
            self.compile()
        params, opt_state, metrics = self._step_fn(state.params, state.opt_state, batch, jnp.int32(state.step))
        return TrainState(params, opt_state, state.step + 1), metrics

    def model_with(self, params: Any) -> nnx.Module:
        """The NNX module carrying ``params`` (for export)."""
        return nnx.merge(self.graphdef, jax.device_get(params), self.rest)
