"""Tiny random models, built offline from configs and saved like real checkpoints.

Tests never download weights (docs/architecture.md, "Conventions": "tests build tiny models from configs and load them
through the same code path users take"). Each builder writes a directory that
``AutoModel*.from_pretrained(dir)`` and ``AutoTokenizer.from_pretrained(dir)`` load: random
weights in safetensors, a config, and a real byte-level BPE tokenizer trained here on a few
hundred lines of English (so words split into several tokens and leading spaces merge, as with
real tokenizers).

Builders:

- :func:`make_tiny_causal` (``arch`` = "llama" | "gpt2" | "qwen2"): llama adds a BOS token to every
  encoding (like Llama/SmolLM tokenizers), gpt2 and qwen2 do not (like GPT-2/Qwen), so both
  tokenisation conventions get exercised. Optional ChatML-style chat template.
- :func:`make_tiny_t5`: encoder-decoder, EOS appended to encoder inputs like T5.
- :func:`make_tiny_bert`: masked LM with [CLS] ... [SEP] and a [MASK] token.

For test sessions use :func:`tiny_model_dir` (or the ``tiny_models`` fixture): it builds each
variant once per process into a temporary directory and hands out the same path afterwards.
Tests must treat those directories as read-only.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

VOCAB_SIZE = 512
# Larger than transformers' 0.02 default so that next-token distributions are peaked enough to
# have clear argmaxes (greedy tests) but still spread (sampling tests).
INIT_RANGE = 0.3

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_SUBJECTS = [
    "The doctor", "The nurse", "The teacher", "My neighbour", "The engineer", "A farmer",
    "The lawyer", "Her brother", "His sister", "The old man", "A young woman", "The student",
    "The manager", "The cook", "The driver", "Our friend",
]
_VERBS = [
    "asked", "helped", "called", "thanked", "visited", "warned", "told", "met", "liked",
    "followed", "answered", "invited",
]
_OBJECTS = [
    "the patient", "the children", "a customer", "the secretary", "his mother", "her father",
    "the clerk", "everyone in town", "the new guest", "the baker", "the librarian", "them",
]
_TAILS = [
    "because she was tired.", "because he was late.", "before the storm began.",
    "after the long meeting.", "and then went home.", "about the weather today.",
    "with a kind smile.", "in the small kitchen.", "on a cold morning.", "without a word.",
]
_FIXED = """\
Question: What is the capital of France? Answer: Paris.
Question: Who wrote the letter? Answer: The secretary wrote it.
The quick brown fox jumps over the lazy dog.
It was the best of times, it was the worst of times.
Once upon a time there was a little house near the river.
People from every country and every religion live in this city.
The answer is yes. The answer is no. The answer is unknown.
Please write a short story about a friendly robot.
I think that is a good idea, and I agree with you.
Numbers like 1, 2, 3, 10, 42 and 100 appear in many texts.
She said: "Hello there!" and he replied: "Good morning."
We cannot determine who did it from the information given.
"""


def corpus() -> list[str]:
    """A few hundred deterministic lines of plain English for tokenizer training."""
    lines = _FIXED.splitlines()
    i = 0
    for s in _SUBJECTS:
        for v in _VERBS:
            o = _OBJECTS[i % len(_OBJECTS)]
            t = _TAILS[(i * 7) % len(_TAILS)]
            lines.append(f"{s} {v} {o} {t}")
            i += 1
    return lines


@functools.lru_cache(maxsize=None)
def _tokenizer_json(special: tuple[str, ...]) -> str:
    """Train a byte-level BPE once per special-token set; return its JSON (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok.to_str()


def _fast_tokenizer(special: tuple[str, ...], *, template: str | None, **special_map):
    """A PreTrainedTokenizerFast around the trained BPE, with an optional post-processor
    ``template`` (TemplateProcessing single-sequence spec, e.g. "<s> $A")."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_tokenizer_json(special))
    if template:
        names = [w for w in template.split() if w != "$A"]
        tok.post_processor = processors.TemplateProcessing(
            single=template,
            pair=template + " $B:1",
            special_tokens=[(n, tok.token_to_id(n)) for n in names],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special_map)


_CAUSAL_SPECIAL = ("<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>")


def _mute_special_outputs(model, tok) -> None:
    """Zero the output-embedding rows of special tokens other than EOS, so that random models
    do not keep "generating" pad/unk/BOS (which decode to nothing and make greedy tests vacuous).
    A zero row gives logit 0, below the typical top logits of the other 500 tokens."""
    import torch

    keep = {tok.eos_token_id}
    ids = [i for i in tok.all_special_ids if i not in keep]
    ids += [tok.convert_tokens_to_ids(t) for t in ("<|im_start|>",) if t in tok.get_vocab()]
    with torch.no_grad():
        model.get_output_embeddings().weight[sorted(set(ids))] = 0.0


def make_tiny_causal(path, arch: str = "llama", seed: int = 0, chat_template: bool = True) -> Path:
    """Save a tiny random causal LM (``llama``, ``gpt2`` or ``qwen2``) plus tokenizer to ``path``."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _fast_tokenizer(
        _CAUSAL_SPECIAL,
        template="<s> $A" if arch == "llama" else None,
        bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    ids = dict(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if arch == "llama":
        cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          initializer_range=INIT_RANGE, tie_word_embeddings=False, **ids)
    elif arch == "qwen2":
        cfg = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          initializer_range=INIT_RANGE, tie_word_embeddings=True, **ids)
    elif arch == "gpt2":
        cfg = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=512,
                         initializer_range=INIT_RANGE, **ids)
    else:
        raise ValueError(f"unknown tiny arch {arch!r}; use llama, gpt2 or qwen2")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    _mute_special_outputs(model, tok)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_tiny_t5(path, seed: int = 0) -> Path:
    """Save a tiny random T5 (encoder-decoder) plus tokenizer (EOS appended, pad id 0)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _fast_tokenizer(
        _CAUSAL_SPECIAL, template="$A </s>",
        eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
    )
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=8, num_layers=2,
                   num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                   decoder_start_token_id=tok.pad_token_id, initializer_factor=0.3,
                   tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(cfg)
    _mute_special_outputs(model, tok)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


_BERT_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def make_tiny_bert(path, seed: int = 0) -> Path:
    """Save a tiny random BERT masked LM plus tokenizer ([CLS] $A [SEP], [MASK])."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _fast_tokenizer(
        _BERT_SPECIAL, template="[CLS] $A [SEP]",
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                     num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512,
                     pad_token_id=tok.pad_token_id, initializer_range=INIT_RANGE)
    torch.manual_seed(seed)
    model = BertForMaskedLM(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# --------------------------------------------------------------------------------------------
# Per-process cache
# --------------------------------------------------------------------------------------------

_BUILDERS = {
    "llama": lambda p: make_tiny_causal(p, "llama"),
    "gpt2": lambda p: make_tiny_causal(p, "gpt2"),
    "qwen2": lambda p: make_tiny_causal(p, "qwen2"),
    "llama-nochat": lambda p: make_tiny_causal(p, "llama", chat_template=False),
    "t5": make_tiny_t5,
    "bert": make_tiny_bert,
}
KINDS = tuple(_BUILDERS)

_lock = threading.Lock()
_root: Path | None = None
_built: dict[str, Path] = {}


def tiny_model_dir(kind: str) -> Path:
    """Directory of the tiny model ``kind`` (one of :data:`KINDS`), built once per process.

    Read-only for callers: copy it (``shutil.copytree``) before changing anything in it.
    """
    global _root
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny model {kind!r}; choose from {', '.join(KINDS)}")
    with _lock:
        if kind not in _built:
            if _root is None:
                _root = Path(tempfile.mkdtemp(prefix="rai-tiny-models-"))
                atexit.register(shutil.rmtree, _root, True)
            _built[kind] = _BUILDERS[kind](_root / kind)
        return _built[kind]


@pytest.fixture(scope="session")
def tiny_models():
    """Fixture: a function ``kind -> Path`` (see :func:`tiny_model_dir`).

    Use it with ``from tests.tiny_models import tiny_models`` in a test module.
    """
    return tiny_model_dir


if __name__ == "__main__":  # quick manual check: python -m tests.tiny_models
    import time

    for k in KINDS:
        t = time.perf_counter()
        d = tiny_model_dir(k)
        print(k, d, f"{time.perf_counter() - t:.2f}s", json.loads((d / "config.json").read_text())["architectures"])
