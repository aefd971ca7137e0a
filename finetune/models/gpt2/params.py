"""HF ``GPT2LMHeadModel`` <-> :class:`finetune.models.gpt2.model.GPT2`.

HF name                               NNX path                   layout
transformer.wte.weight                wte.embedding              [V, D]
transformer.wpe.weight                wpe.embedding              [P, D]
transformer.h.{i}.ln_{1,2}.{weight,bias}   h.{i}.ln_{1,2}.{scale,bias}
transformer.h.{i}.attn.c_attn.{weight,bias} h.{i}.attn.c_attn.{kernel,bias}   Conv1D [D, 3D]: as is
transformer.h.{i}.attn.c_proj.*       h.{i}.attn.c_proj.*        [D, D] as is
transformer.h.{i}.mlp.c_{fc,proj}.*   h.{i}.mlp.c_{fc,proj}.*    as is
transformer.ln_f.{weight,bias}        ln_f.{scale,bias}
lm_head.weight                        tied copy of wte (or lm_head.embedding when untied)

HF's ``Conv1D`` already stores ``[in, out]``, so nothing is transposed. The original OpenAI
checkpoints on the hub lack the ``transformer.`` prefix; :func:`normalize_key` adds it.
"""

from __future__ import annotations

from finetune.models.gpt2.config import GPT2ModelConfig
from finetune.models.param_mapping import Mapping, ParamRule, dense

_TOP_LEVEL = ("wte.", "wpe.", "h.", "ln_f.")


def normalize_key(key: str) -> str:
    return "transformer." + key if key.startswith(_TOP_LEVEL) else key


def mapping(cfg: GPT2ModelConfig) -> Mapping:
    rules = [ParamRule("transformer.wte.weight", ("wte", "embedding")),
             ParamRule("transformer.wpe.weight", ("wpe", "embedding"))]
    for i in range(cfg.num_layers):
        p, q = f"transformer.h.{i}.", ("h", i)
        for ln in ("ln_1", "ln_2"):
            rules += [ParamRule(p + ln + ".weight", q + (ln, "scale")), ParamRule(p + ln + ".bias", q + (ln, "bias"))]
        rules += dense(p + "attn.c_attn", q + ("attn", "c_attn"), bias=True, transpose=False)
        rules += dense(p + "attn.c_proj", q + ("attn", "c_proj"), bias=True, transpose=False)
        rules += dense(p + "mlp.c_fc", q + ("mlp", "c_fc"), bias=True, transpose=False)
        rules += dense(p + "mlp.c_proj", q + ("mlp", "c_proj"), bias=True, transpose=False)
    rules += [ParamRule("transformer.ln_f.weight", ("ln_f", "scale")),
              ParamRule("transformer.ln_f.bias", ("ln_f", "bias"))]
    tied = {}
    if cfg.tie_word_embeddings:
        tied["lm_head.weight"] = "transformer.wte.weight"
    else:
        rules.append(ParamRule("lm_head.weight", ("lm_head", "embedding")))
    return Mapping(rules=rules, tied=tied, untie_if_different=frozenset({"lm_head.weight"}),
                   ignored=(r"\.attn\.bias$", r"\.attn\.masked_bias$", r"\.crossattention\.bias$"),
                   architecture="GPT2LMHeadModel")
