"""HF ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` / ``MistralForCausalLM`` <-> :class:`finetune.models.llama.model.Decoder`.

HF name                                            NNX path                                  layout
model.embed_tokens.weight                          embed_tokens.embedding                     [V, D]
model.layers.{i}.input_layernorm.weight            layers.{i}.input_layernorm.scale           [D]
model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   layers.{i}.self_attn.{q,k,v,o}_proj.kernel transposed
model.layers.{i}.self_attn.{q,k,v}_proj.bias       ...bias (Qwen2; Llama attention_bias, also o)
model.layers.{i}.post_attention_layernorm.weight   layers.{i}.post_attention_layernorm.scale
model.layers.{i}.mlp.{gate,up,down}_proj.weight    layers.{i}.mlp.{gate,up,down}_proj.kernel  transposed
model.norm.weight                                  norm.scale
lm_head.weight                                     lm_head.embedding (untied) [V, D]; tied: a copy
                                                   of model.embed_tokens.weight

q/k weights are in HF's rotate-half RoPE order (transformers un-permutes GGUF's interleaved
order when it reads a .gguf), which is the order :func:`finetune.models.layers.apply_rope` uses.
"""

from __future__ import annotations

from finetune.models.llama.config import DecoderConfig
from finetune.models.param_mapping import Mapping, ParamRule, dense


def mapping(cfg: DecoderConfig) -> Mapping:
    rules = [ParamRule("model.embed_tokens.weight", ("embed_tokens", "embedding"))]
    for i in range(cfg.num_layers):
        p, q = f"model.layers.{i}.", ("layers", i)
        rules.append(ParamRule(p + "input_layernorm.weight", q + ("input_layernorm", "scale")))
        for n in ("q", "k", "v"):
            rules += dense(p + f"self_attn.{n}_proj", q + ("self_attn", f"{n}_proj"), bias=cfg.qkv_bias)
        rules += dense(p + "self_attn.o_proj", q + ("self_attn", "o_proj"), bias=cfg.o_bias)
        rules.append(ParamRule(p + "post_attention_layernorm.weight", q + ("post_attention_layernorm", "scale")))
        for n in ("gate", "up", "down"):
            rules += dense(p + f"mlp.{n}_proj", q + ("mlp", f"{n}_proj"), bias=cfg.mlp_bias)
    rules.append(ParamRule("model.norm.weight", ("norm", "scale")))
    tied = {}
    if cfg.tie_word_embeddings:
        tied["lm_head.weight"] = "model.embed_tokens.weight"
    else:
        rules.append(ParamRule("lm_head.weight", ("lm_head", "embedding")))
    arch = (list(cfg.hf_config.get("architectures") or []) or ["LlamaForCausalLM"])[0]
    return Mapping(rules=rules, tied=tied, untie_if_different=frozenset({"lm_head.weight"}),
                   ignored=(r"rotary_emb\.inv_freq$",), architecture=arch)
