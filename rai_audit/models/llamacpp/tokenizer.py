"""The transformers tokenizer of a GGUF file, for the llama-cpp backend.

Why not llama.cpp's own tokenizer: the point of this backend is to answer the *same* requests as
the transformers backend on the same GGUF, and a log-likelihood is only comparable when the same
tokens are scored. So texts are encoded by :class:`rai_audit.models.encoding.PromptEncoder` with
the tokenizer transformers builds from the GGUF's metadata (the one the converted copy saves, chat
template included), and generated tokens are decoded by it too.

Building that tokenizer from the GGUF takes about 6 s (transformers parses the whole file), so it
is read from the converted copy when one exists (:mod:`rai_audit.models.default_model`), else
built once and saved under ``$RAI_AUDIT_HOME/tokenizers/<gguf sha256>/`` (written to a temporary
folder and renamed, like the converted copy).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rai_audit.errors import ModelLoadError
from rai_audit.hashing import cache_home


def tokenizer_dir(gguf_sha256: str) -> Path:
    return cache_home() / "tokenizers" / gguf_sha256


def load_tokenizer(gguf_path: str, gguf_sha256: str) -> Any:
    """The transformers tokenizer of the GGUF file at ``gguf_path`` (module docstring)."""
    from transformers import AutoTokenizer

    from rai_audit.models.default_model import converted_dir

    for d in (converted_dir(gguf_sha256), tokenizer_dir(gguf_sha256)):
        if (d / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(str(d))
    path = Path(gguf_path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except ImportError as e:
        raise ModelLoadError(f"Reading the tokenizer of {str(path)!r} needs the gguf package ({e}): pip install gguf.") from e
    except Exception as e:  # transformers raises assorted errors for GGUF tokenizers it does not know
        raise ModelLoadError(
            f"transformers could not build the tokenizer of {str(path)!r} ({type(e).__name__}: {e}); the llama-cpp "
            "backend encodes texts with it so that its answers are comparable with the transformers backend's. "
            "Upgrade transformers, or serve the file with llama.cpp's server and use 'openai-compat:'."
        ) from e
    target = tokenizer_dir(gguf_sha256)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{gguf_sha256[:12]}-", dir=target.parent))
        try:
            tok.save_pretrained(tmp)
            os.replace(tmp, target)
        except OSError:
            pass  # another process saved it first, or the cache is read-only: both fine
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass  # the saved copy only saves time
    return tok
