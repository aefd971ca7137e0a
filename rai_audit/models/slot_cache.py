"""A KV cache written in place, so that hundreds of rows can be decoded together on a CPU.

Why: transformers' ``DynamicCache`` grows by concatenation, so every decode step copies every
row's whole cache, and dropping a finished row copies it again. Decoding a small model on a CPU
is dispatch-bound at a few dozen rows and only pays off at a few hundred, where those copies cost
more than the attention itself (measured on SmolLM2-135M in bfloat16, 512 rows of 140 tokens:
443 ms per step with the ``DynamicCache``, 287 ms with this cache; docs/performance.md).

A :class:`SlotCache` holds one preallocated buffer per layer, ``[rows, kv heads, width, head
dim]``, with ``width`` = the longest prompt of the group + the most new tokens any row may take.
Prompts are prefilled in small chunks (each with its own ``DynamicCache``, which bounds the
activations) and copied in right-aligned to one column, :attr:`SlotCache.length`, so that all rows
then write their next key and value into the same column at each step. The caller masks the left
padding with a 4D mask it owns (``generation._SlotStepper``); nothing here depends on which rows are
still being decoded.

It only serves models whose every layer attends to the whole past (no sliding window, no linear
attention): :func:`supports_slot_cache` says which.
"""

from __future__ import annotations

import torch

from rai_audit.models.batching import text_config

try:
    from transformers.cache_utils import Cache, CacheLayerMixin

    LAYERED_CACHES = True
except ImportError:  # a transformers without per-layer caches: the DynamicCache loop serves
    Cache = CacheLayerMixin = object  # type: ignore[misc,assignment]
    LAYERED_CACHES = False


class SlotLayer(CacheLayerMixin):
    """One layer's keys and values, ``[rows, kv heads, width, head dim]``; columns before
    :attr:`length` are filled."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.keys, self.values, self.length = keys, values, length
        self.device = keys.device
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("A SlotLayer is allocated by SlotCache.allocate, never lazily.")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Write the new columns in place; return views of the filled columns (no copy)."""
        end = self.length + key_states.shape[-2]
        if end > self.keys.shape[-2]:
            raise RuntimeError(f"SlotCache is full: {end} columns asked of {self.keys.shape[-2]}.")
        self.keys[:, :, self.length:end] = key_states
        self.values[:, :, self.length:end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.keys.shape[-2]

    def select_rows(self, rows: torch.Tensor) -> None:
        self.keys = self.keys.index_select(0, rows)
        self.values = self.values.index_select(0, rows)


class SlotCache(Cache):
    """The layers of one decode group; see the module docstring."""

    def __init__(self, layers: list[SlotLayer]):
        super().__init__(layers=layers)

    @classmethod
    def allocate(cls, like, rows: int, width: int) -> "SlotCache":
        """Empty buffers for ``rows`` rows of ``width`` columns, shaped and typed after the layers of
        ``like`` (a prefill's ``DynamicCache``)."""
        layers = []
        for layer in like.layers:
            k, v = layer.keys, layer.values
            layers.append(SlotLayer(k.new_zeros((rows, k.shape[1], width, k.shape[3])),
                                    v.new_zeros((rows, v.shape[1], width, v.shape[3])), 0))
        return cls(layers)

    @property
    def length(self) -> int:
        return self.layers[0].length

    def write_prompts(self, prefill, rows: torch.Tensor, src: torch.Tensor, end: int) -> None:
        """Copy row ``src[i]`` of ``prefill`` (a ``DynamicCache`` of left-padded prompts) into row
        ``rows[i]``, its last column at ``end - 1``; every layer's :attr:`length` becomes ``end``."""
        for slot, layer in zip(self.layers, prefill.layers):
            width = layer.keys.shape[-2]
            slot.keys[rows, :, end - width:end] = layer.keys.index_select(0, src)
            slot.values[rows, :, end - width:end] = layer.values.index_select(0, src)
            slot.length = end

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (in that order): one copy of the kept rows' buffers."""
        for layer in self.layers:
            layer.select_rows(rows)


def supports_slot_cache(model) -> bool:
    """Whether ``model`` can decode from a :class:`SlotCache`: a decoder-only transformers model on
    the ``sdpa`` attention (which takes our boolean 4D mask as given) whose every layer attends to
    the whole past."""
    if not LAYERED_CACHES:
        return False
    cfg = text_config(model)
    if getattr(model.config, "is_encoder_decoder", False) or getattr(cfg, "_attn_implementation", None) != "sdpa":
        return False
    layer_types = getattr(cfg, "layer_types", None)
    if layer_types is not None:
        return all(t == "full_attention" for t in layer_types)
    return getattr(cfg, "sliding_window", None) is None
