"""HF ``T5ForConditionalGeneration`` <-> :class:`finetune.models.t5.model.T5`.

HF name                                                    NNX path
shared.weight                                              shared.embedding            [V, D]
encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight
                                                           encoder.relative_bias.embedding.embedding [buckets, H]
encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight  encoder.layers.{i}.attn.{q,k,v,o}.kernel (transposed)
encoder.block.{i}.layer.0.layer_norm.weight                encoder.layers.{i}.attn_norm.scale
encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight  encoder.layers.{i}.mlp.*.kernel (transposed)
encoder.block.{i}.layer.1.layer_norm.weight                encoder.layers.{i}.mlp_norm.scale
encoder.final_layer_norm.weight                            encoder.final_norm.scale
decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight
                                                           decoder.relative_bias.embedding.embedding
decoder.block.{i}.layer.0.SelfAttention.*  / layer_norm    decoder.layers.{i}.self_attn.* / self_attn_norm
decoder.block.{i}.layer.1.EncDecAttention.* / layer_norm   decoder.layers.{i}.cross_attn.* / cross_attn_norm
decoder.block.{i}.layer.2.DenseReluDense.* / layer_norm    decoder.layers.{i}.mlp.* / mlp_norm
decoder.final_layer_norm.weight                            decoder.final_norm.scale
lm_head.weight                                             lm_head.embedding [V, D] (v1.1: untied)

``encoder.embed_tokens.weight`` / ``decoder.embed_tokens.weight`` are copies of
``shared.weight``. transformers 5 always ties ``lm_head`` to ``shared`` in memory and then
omits ``lm_head.weight`` from a saved file when both are equal, so an untied (v1.1) config
whose file has no ``lm_head.weight`` reads the head from ``shared.weight``.
"""

from __future__ import annotations

from finetune.models.param_mapping import Mapping, ParamRule, dense
from finetune.models.t5.config import T5ModelConfig


def _attn(hf: str, path: tuple) -> list[ParamRule]:
    return [r for n in ("q", "k", "v", "o") for r in dense(f"{hf}.{n}", path + (n,), bias=False)]


def _mlp(hf: str, path: tuple, gated: bool) -> list[ParamRule]:
    names = ("wi_0", "wi_1", "wo") if gated else ("wi", "wo")
    return [r for n in names for r in dense(f"{hf}.{n}", path + (n,), bias=False)]


def mapping(cfg: T5ModelConfig) -> Mapping:
    rules = [ParamRule("shared.weight", ("shared", "embedding"))]
    for stack, n_layers in (("encoder", cfg.num_layers), ("decoder", cfg.num_decoder_layers)):
        rules.append(ParamRule(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                               (stack, "relative_bias", "embedding", "embedding")))
        for i in range(n_layers):
            p, q = f"{stack}.block.{i}.layer.", (stack, "layers", i)
            if stack == "encoder":
                rules += _attn(p + "0.SelfAttention", q + ("attn",))
                rules.append(ParamRule(p + "0.layer_norm.weight", q + ("attn_norm", "scale")))
                rules += _mlp(p + "1.DenseReluDense", q + ("mlp",), cfg.gated)
                rules.append(ParamRule(p + "1.layer_norm.weight", q + ("mlp_norm", "scale")))
            else:
                rules += _attn(p + "0.SelfAttention", q + ("self_attn",))
                rules.append(ParamRule(p + "0.layer_norm.weight", q + ("self_attn_norm", "scale")))
                rules += _attn(p + "1.EncDecAttention", q + ("cross_attn",))
                rules.append(ParamRule(p + "1.layer_norm.weight", q + ("cross_attn_norm", "scale")))
                rules += _mlp(p + "2.DenseReluDense", q + ("mlp",), cfg.gated)
                rules.append(ParamRule(p + "2.layer_norm.weight", q + ("mlp_norm", "scale")))
        rules.append(ParamRule(f"{stack}.final_layer_norm.weight", (stack, "final_norm", "scale")))
    tied = {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}
    fallbacks = {}
    if cfg.tie_word_embeddings:
        tied["lm_head.weight"] = "shared.weight"
    else:
        rules.append(ParamRule("lm_head.weight", ("lm_head", "embedding")))
        fallbacks["lm_head.weight"] = "shared.weight"
    return Mapping(rules=rules, tied=tied, untie_if_different=frozenset({"lm_head.weight"}), fallbacks=fallbacks,
                   ignored=(r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$",),
                   architecture="T5ForConditionalGeneration", auto_class="AutoModelForSeq2SeqLM")
