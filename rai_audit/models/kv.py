"""Small helpers around transformers' KV caches.

Sharing a context between continuations (log-likelihood) and between samples (generation) means
computing a prompt's keys and values once and then handing copies of selected rows to later
forward passes. ``Cache.batch_select_indices`` does this in place; :func:`select_rows` returns a new
cache instead, so one prefix cache can feed several continuation batches.
"""

from __future__ import annotations

import copy
import inspect

import torch


def select_rows(cache, rows: torch.Tensor):
    """A new cache holding ``rows`` (batch indices, repeats allowed) of ``cache``; ``cache`` is
    left untouched (layers grow by concatenation, so the copies never write into it)."""
    new = copy.copy(cache)
    new.layers = []
    for layer in cache.layers:
        clone = copy.copy(layer)
        keys = getattr(layer, "keys", None)
        if isinstance(keys, torch.Tensor) and keys.numel():
            clone.keys = keys.index_select(0, rows.to(keys.device))
            clone.values = layer.values.index_select(0, rows.to(layer.values.device))
        new.layers.append(clone)
    return new


def accepts(model: torch.nn.Module, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (e.g. ``logits_to_keep``)."""
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def cache_kw(model: torch.nn.Module, cache) -> dict:
    """The keyword that hands ``cache`` to ``model.forward``: ``cache`` in transformers >= 5.x's
    models, ``past_key_values`` before. Passing the old name to a new model works but warns on
    every forward pass, so the name is picked from the signature."""
    return {"cache": cache} if accepts(model, "cache") else {"past_key_values": cache}


def output_cache(output):
    """The KV cache a forward pass returned (``output.cache``, or ``past_key_values`` before)."""
    if "cache" in getattr(output, "keys", lambda: ())():
        return output["cache"]
    return output.past_key_values
