"""The model-family registry (``finetune/models/registry.py``, issue 15).

- the built-in families are one folder each and registered once;
- a new family registers through the public path and then imports, exports, round-trips and
  trains with no other code (``test_toy_family_*``: the recipe "Adding a model family" in
  ``docs/finetune.md`` cites it);
- no code outside the registry switches on a family or kind name; no import cycles in
  ``finetune/``; no module above 500 lines.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from finetune.models import (  # noqa: E402
    DECODER_ONLY,
    ENCODER_DECODER,
    ModelFamily,
    config_from_hf,
    families,
    family_for_hf_config,
    family_of,
    from_hf_config,
    get_family,
    get_layout,
    is_encoder_decoder,
    register_family,
    unregister_family,
)
from finetune.models.llama.config import DecoderConfig  # noqa: E402
from finetune.models.llama.config import from_hf as llama_from_hf  # noqa: E402
from finetune.models.llama.model import Decoder  # noqa: E402
from finetune.models.llama.params import mapping as llama_mapping  # noqa: E402
from finetune.models.param_mapping import Mapping, ParamRule  # noqa: E402
from rai_audit.errors import UserError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FINETUNE = REPO / "finetune"
REGISTRY = FINETUNE / "models" / "registry.py"

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 50, "hidden_size": 16,
         "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
GPT2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50, "n_embd": 16, "n_layer": 1,
        "n_head": 2, "n_positions": 32}
T5 = {"architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "vocab_size": 50, "d_model": 16,
      "d_kv": 4, "d_ff": 24, "num_layers": 1, "num_heads": 4, "feed_forward_proj": "gated-gelu"}


# ---------------------------------------------------------------------------- built-in families


def test_builtin_families_one_folder_each():
    assert [f.name for f in families()][:3] == ["llama", "gpt2", "t5"]
    for fam in families()[:3]:
        folder = FINETUNE / "models" / fam.name
        assert {"__init__.py", "config.py", "model.py", "params.py"} <= {p.name for p in folder.glob("*.py")}
        assert fam.model.__module__ == f"finetune.models.{fam.name}.model"
        assert fam.param_mapping.__module__ == f"finetune.models.{fam.name}.params"
    for hf, name, layout in ((LLAMA, "llama", DECODER_ONLY), (GPT2, "gpt2", DECODER_ONLY), (T5, "t5", ENCODER_DECODER)):
        fam = family_for_hf_config(hf)
        assert fam.name == name and fam.layout is layout and get_family(name) is fam
        cfg = config_from_hf(hf)
        assert family_of(cfg) is fam and is_encoder_decoder(cfg) == (layout is ENCODER_DECODER)
        # no architectures: model_type decides
        assert family_for_hf_config({k: v for k, v in hf.items() if k != "architectures"}) is fam
    assert family_for_hf_config({**LLAMA, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}).name == "llama"
    assert get_layout("decoder") is DECODER_ONLY and get_layout("t5") is ENCODER_DECODER
    assert get_layout(ENCODER_DECODER) is ENCODER_DECODER
    with pytest.raises(ValueError, match="unknown model kind"):
        get_layout("rnn")
    with pytest.raises(ValueError, match="unknown model family"):
        get_family("falcon")


def test_registration_refuses_clashes():
    with pytest.raises(ValueError, match="already registered"):
        register_family(get_family("llama"))
    clash = dataclasses.replace(get_family("gpt2"), name="gpt2-again")
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        register_family(clash)
    other_layout = dataclasses.replace(DECODER_ONLY, default_optimizer="adafactor")
    odd = dataclasses.replace(get_family("gpt2"), name="odd", architectures=frozenset({"OddLM"}),
                              model_types=frozenset({"odd"}), layout=other_layout)
    with pytest.raises(ValueError, match="layout name"):
        register_family(odd)
    with pytest.raises(TypeError):
        register_family({"name": "x"})
    assert [f.name for f in families()] == ["llama", "gpt2", "t5"]


# ---------------------------------------------------------------------------- adding a family
# A toy family through the public path: the Llama model code under a new name, architecture
# ("ToyForCausalLM") and HF tensor prefix ("toy." where Llama has "model."). Older toy files
# used "model.": the family's normalize_key renames them on import.


@dataclasses.dataclass(frozen=True)
class ToyConfig(DecoderConfig):
    family: str = "toy"


def toy_config_from_hf(d, arch, options):
    base = llama_from_hf(d, arch, options)
    return ToyConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.name != "family"})


def toy_mapping(cfg: ToyConfig) -> Mapping:
    m = llama_mapping(cfg)

    def rename(key: str) -> str:
        return "toy." + key.removeprefix("model.") if key.startswith("model.") else key

    return dataclasses.replace(
        m, rules=[ParamRule(rename(r.hf_key), r.path, r.transpose) for r in m.rules],
        tied={rename(k): rename(v) for k, v in m.tied.items()}, architecture="ToyForCausalLM")


def toy_normalize_key(key: str) -> str:
    return "toy." + key.removeprefix("model.") if key.startswith("model.") else key


TOY_FAMILY = ModelFamily(
    name="toy", supported="Toy (ToyForCausalLM)", architectures=frozenset({"ToyForCausalLM"}),
    model_types=frozenset({"toy"}), config_from_hf=toy_config_from_hf, model=Decoder, param_mapping=toy_mapping,
    layout=DECODER_ONLY, normalize_key=toy_normalize_key)
TOY = {**LLAMA, "architectures": ["ToyForCausalLM"], "model_type": "toy", "tie_word_embeddings": False,
       "bos_token_id": 1, "eos_token_id": 2}


@pytest.fixture
def toy_family():
    register_family(TOY_FAMILY)
    try:
        yield TOY_FAMILY
    finally:
        unregister_family("toy")


def _params(model) -> dict:
    return {tuple(p): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def test_toy_family_imports_exports_and_round_trips(toy_family, tmp_path):
    from finetune.checkpoint_io.hf_export import export_hf, hf_tensors
    from finetune.checkpoint_io.hf_import import import_tensors, load_hf_model

    cfg, model = from_hf_config(TOY, seed=11)
    assert isinstance(cfg, ToyConfig) and family_of(cfg) is toy_family and not is_encoder_decoder(cfg)
    assert family_for_hf_config({k: v for k, v in TOY.items() if k != "architectures"}) is toy_family
    with pytest.warns(UserWarning, match="no tokenizer"):
        out = export_hf(model, tmp_path / "toy")
    written = json.loads((out / "config.json").read_text())
    assert written["architectures"] == ["ToyForCausalLM"] and written["tie_word_embeddings"] is False
    from safetensors.numpy import load_file

    names = set(load_file(str(out / "model.safetensors")))
    assert "toy.embed_tokens.weight" in names and not any(n.startswith("model.") for n in names)

    cfg2, back = load_hf_model(out)
    assert isinstance(cfg2, ToyConfig) and cfg2 == cfg
    a, b = _params(model), _params(back)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ids = jnp.asarray(np.arange(12)[None] % 50)
    np.testing.assert_array_equal(np.asarray(nnx.jit(lambda m, x: m(x))(back, ids)),
                                  np.asarray(nnx.jit(lambda m, x: m(x))(model, ids)))

    # legacy names ("model.") load through the family's normalize_key
    legacy = {("model." + k.removeprefix("toy.") if k.startswith("toy.") else k): v
              for k, v in hf_tensors(model).items()}
    assert "model.embed_tokens.weight" in legacy
    _, from_legacy = import_tensors(cfg, legacy)
    assert all(np.array_equal(v, _params(from_legacy)[k]) for k, v in a.items())


def test_toy_family_trains_and_shows_in_errors(toy_family, tmp_path):
    from finetune.train import batch_loss, resolve_optimizer

    cfg, model = from_hf_config(TOY, seed=12)
    kind = family_of(cfg).layout.name
    seg = jnp.asarray([[1] * 6 + [2] * 4 + [0] * 2])
    batch = {"input_ids": jnp.asarray(np.arange(12)[None] % 50), "targets": jnp.asarray(np.arange(1, 13)[None] % 50),
             "weights": (seg > 0).astype(jnp.float32), "segment_ids": seg,
             "positions": jnp.asarray([list(range(6)) + list(range(4)) + [0, 0]])}
    loss, metrics = batch_loss(model, batch, kind, z_loss=0.0)
    assert np.isfinite(float(loss)) and float(metrics["target_tokens"]) == 10.0
    cfg_ft = type("Cfg", (), {"optimizer": "auto", "schedule": "auto"})()
    assert resolve_optimizer(cfg_ft, kind) == ("adamw", "cosine")
    with pytest.raises(UserError, match=r"Supported: .*T5/Flan-T5 \(T5ForConditionalGeneration\), Toy \(ToyForCausalLM\)"):
        config_from_hf({"architectures": ["FalconForCausalLM"], "model_type": "falcon"})


def test_unregistered_family_is_unsupported():
    with pytest.raises(UserError, match="ToyForCausalLM"):
        config_from_hf(TOY)


# ---------------------------------------------------------------------------- structure


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(FINETUNE.rglob("*.py")):
        parts = list(p.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _switch_names() -> set[str]:
    return {f.name for f in families()} | {f.layout.name for f in families()}


def _switches(tree: ast.AST, names: set[str]) -> list[int]:
    """Line numbers of comparisons with ``family`` / ``kind`` or with a family / layout name,
    ``isinstance`` tests against family config classes, and dicts keyed by family names."""
    config_classes = {"DecoderConfig", "GPT2ModelConfig", "T5ModelConfig"}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                 for op in node.ops):
            for x in [node.left, *node.comparators]:
                ident = x.attr if isinstance(x, ast.Attribute) else x.id if isinstance(x, ast.Name) else None
                if ident in ("family", "kind") or (isinstance(x, ast.Constant) and x.value in names):
                    hits.append(node.lineno)
                elif isinstance(x, (ast.Tuple, ast.List, ast.Set)) and any(
                        isinstance(e, ast.Constant) and e.value in names for e in x.elts):
                    hits.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            if any(isinstance(n, ast.Name) and n.id in config_classes for n in ast.walk(node.args[1])):
                hits.append(node.lineno)
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if sum(k in names for k in keys) >= 2:
                hits.append(node.lineno)
        elif isinstance(node, ast.match_case) and any(
                isinstance(n, ast.Constant) and n.value in names for n in ast.walk(node.pattern)):
            hits.append(node.pattern.lineno)
    return sorted(set(hits))


def test_switch_detector_catches_the_old_shapes():
    old = ('if cfg.family == "t5": pass\n'
           'kind = "t5" if cfg.family == "t5" else "decoder"\n'
           'x = rows["segment_ids" if kind != "t5" else "decoder_segment_ids"]\n'
           'if family in ("llama", "gpt2"): pass\n'
           'opt = "adafactor" if k == "t5" else "adamw"\n'
           'ok = isinstance(cfg, T5ModelConfig)\n'
           'f = {"llama": 1, "gpt2": 2}[name]\n'
           'y = stack == "encoder"\n')
    assert _switches(ast.parse(old), {"llama", "gpt2", "t5", "decoder"}) == [1, 2, 3, 4, 5, 6, 7]


def test_no_family_switch_outside_the_registry():
    names = _switch_names()
    bad = {}
    for mod, path in _modules().items():
        if path == REGISTRY:
            continue
        lines = _switches(ast.parse(path.read_text(encoding="utf-8")), names)
        if lines:
            bad[str(path.relative_to(REPO))] = lines
    assert not bad, f"family/kind switches outside finetune/models/registry.py: {bad}"


# Import cycles and module length across finetune/ (and every other package) are checked by
# tests/test_architecture.py.
