"""llama.cpp in this process, through llama-cpp-python's low-level (ctypes) API.

Why not the high-level ``llama_cpp.Llama``: it holds one sequence and decodes one token of it per
``llama_decode``, so 25 samples of a prompt are 25 decodes per step, and its echoed prompt
log-probabilities are misaligned (docs/served-models.md). llama.cpp itself decodes many
sequences in one call: every token of a ``llama_batch`` carries its position and the sequence ids
it belongs to, and attention only looks at cells of the same sequence. So here:

* a :class:`Context` is made to measure for each batch of work (about 20 ms to create) with a
  *unified* KV cache: a token may belong to several sequences at once, so a prompt shared by 25
  samples, or a context shared by 4 answer options, is decoded and stored once;
* the batch's arrays are numpy buffers whose addresses go into the ``llama_batch`` struct (the
  per-token ``seq_id`` pointers point into one flat array), so filling a batch of thousands of
  tokens is a few vectorised assignments instead of a Python loop over ctypes fields;
* logits come back as a numpy view of llama.cpp's output buffer (rows in batch order of the tokens
  that asked for one), copied before the next decode overwrites them;
* micro-batches are small and flash attention is on (:data:`UBATCH`), which makes every answer
  independent of the other sequences decoded with it.

Only the CPU is used unless ``gpu_layers`` says otherwise (a CUDA build of llama-cpp-python).
llama.cpp's log lines go to the ``llama-cpp-python`` logger, which is set to ERROR unless the user
configured it (its import default prints every line of model loading to stderr).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import numpy as np

from rai_audit.errors import ModelLoadError

INSTALL_HINT = ("pip install 'rai-audit[llama-cpp]' (builds llama.cpp from source, a few minutes; on CPUs where "
                "the native build crashes set CMAKE_ARGS as docs/backends.md shows)")

#: Tokens per llama.cpp micro-batch (``n_ubatch``), with flash attention on. Why so small: from 64
#: tokens per micro-batch on, llama.cpp 0.3.36 (CPU) switches to other kernels, and their
#: float rounding, amplified by the 8-bit rounding of activations before every quantised matrix
#: product, moves a token's logits by up to about 1 and a request's log-likelihood by up to 0.6
#: nats depending on which *other* sequences share its micro-batch. Below 64 (and with flash
#: attention: without it the cache's length matters too) every token's logits are exactly those of
#: decoding it alone, token by token, so an answer depends only on its request, as the
#: ``Sampling`` contract asks (tests/test_llama_cpp_backend.py checks it). Measured cost: none
#: (the quantised kernels are compute-bound on CPU; 160 log-likelihoods took 12.5 s with 63,
#: 11.4 s with 512).
UBATCH = 32

_init_lock = threading.Lock()
_initialised = False


def lib() -> Any:
    """The ``llama_cpp`` module, imported now; ModelLoadError with the install command if absent."""
    global _initialised
    try:
        import llama_cpp
    except (ImportError, OSError) as e:  # OSError: the shared library is there but does not load
        raise ModelLoadError(f"The llama-cpp backend needs llama-cpp-python, which is not importable here ({e}). "
                             f"Install it with: {INSTALL_HINT}.") from e
    with _init_lock:
        if not _initialised:
            quiet = logging.getLogger("llama-cpp-python")
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.ERROR)
            llama_cpp.llama_backend_init()
            _initialised = True
    return llama_cpp


def engine_version() -> dict[str, Any]:
    """What identifies the engine build, for provenance: the package version and the CPU features
    llama.cpp was compiled with (its kernels, hence the last digits of every number, depend on them)."""
    import importlib.metadata

    L = lib()
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = getattr(L, "__version__", None)
    return {"name": "llama.cpp", "package": "llama-cpp-python", "version": version,
            "system_info": L.llama_print_system_info().decode("utf-8", "replace").strip()}


class Engine:
    """A GGUF model loaded by llama.cpp (weights memory-mapped; contexts come from :meth:`context`)."""

    def __init__(self, path: str, *, threads: int, gpu_layers: int = 0):
        L = self.L = lib()
        params = L.llama_model_default_params()
        params.n_gpu_layers = int(gpu_layers)
        self.path, self.threads = path, int(threads)
        self.model = L.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not self.model:
            raise ModelLoadError(f"llama.cpp could not load the GGUF file {path!r} (unsupported architecture or "
                                 "quantisation for this llama.cpp build, or a corrupt file). Re-download it, or "
                                 "upgrade llama-cpp-python.")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(L.llama_model_n_ctx_train(self.model)) or None
        self.eos = int(L.llama_vocab_eos(self.vocab))
        self.max_sequences = int(L.llama_max_parallel_sequences())
        self.lock = threading.Lock()  # one decode at a time per model (contexts are not thread-safe)

    def context(self, *, n_ctx: int, n_seq: int, n_batch: int) -> "Context":
        return Context(self, n_ctx=n_ctx, n_seq=n_seq, n_batch=n_batch)

    def close(self) -> None:
        if getattr(self, "model", None):
            self.L.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass


class Context:
    """A llama.cpp context (KV cache of ``n_ctx`` cells shared by up to ``n_seq`` sequences) and
    one reusable batch of up to ``n_batch`` tokens."""

    def __init__(self, engine: Engine, *, n_ctx: int, n_seq: int, n_batch: int):
        L = self.L = engine.L
        if n_seq > engine.max_sequences:
            raise ValueError(f"{n_seq} sequences requested; llama.cpp allows {engine.max_sequences}")
        p = L.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch = int(n_ctx), int(n_batch), int(min(n_batch, UBATCH))
        p.n_seq_max = int(n_seq)
        p.n_threads = p.n_threads_batch = engine.threads
        p.kv_unified = True
        p.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED  # see UBATCH
        p.no_perf = True
        self.engine, self.n_ctx, self.n_seq, self.n_batch = engine, int(n_ctx), int(n_seq), int(n_batch)
        self.ctx = L.llama_init_from_model(engine.model, p)
        if not self.ctx:
            raise MemoryError(f"llama.cpp could not create a context of {n_ctx} cells for {n_seq} sequences")
        self.mem = L.llama_get_memory(self.ctx)
        self._tokens = np.zeros(n_batch, np.int32)
        self._pos = np.zeros(n_batch, np.int32)
        self._n_seq = np.zeros(n_batch, np.int32)
        self._outputs = np.zeros(n_batch, np.int8)
        self._seq_ptrs = np.zeros(n_batch, np.uintp)
        self._seqs = np.zeros(n_batch, np.int32)

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def decode(self, tokens: np.ndarray, pos: np.ndarray, seq_counts: np.ndarray, seqs: np.ndarray,
               outputs: np.ndarray) -> np.ndarray:
        """Decode one batch and return the logits [rows asking for one, n_vocab] (float32, a copy).

        Token ``i`` is ``tokens[i]`` at position ``pos[i]`` in each of the ``seq_counts[i]``
        sequences that follow in ``seqs`` (``seqs`` is their concatenation, token by token);
        ``outputs[i]`` says whether its logits are wanted."""
        n = len(tokens)
        if n == 0:
            return np.zeros((0, self.engine.n_vocab), np.float32)
        if n > self.n_batch:
            raise ValueError(f"a batch of {n} tokens for a context made for {self.n_batch}")
        if len(seqs) > len(self._seqs):
            self._seqs = np.zeros(len(seqs), np.int32)
        self._tokens[:n], self._pos[:n], self._n_seq[:n], self._outputs[:n] = tokens, pos, seq_counts, outputs
        self._seqs[: len(seqs)] = seqs
        starts = np.concatenate(([0], np.cumsum(seq_counts[:-1], dtype=np.int64)))
        self._seq_ptrs[:n] = self._seqs.ctypes.data + 4 * starts
        L = self.L
        batch = L.llama_batch(
            n_tokens=n,
            token=self._tokens.ctypes.data_as(ctypes.POINTER(L.llama_token)),
            embd=None,
            pos=self._pos.ctypes.data_as(ctypes.POINTER(L.llama_pos)),
            n_seq_id=self._n_seq.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
            seq_id=ctypes.cast(self._seq_ptrs.ctypes.data, ctypes.POINTER(ctypes.POINTER(L.llama_seq_id))),
            logits=self._outputs.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        rc = L.llama_decode(self.ctx, batch)
        if rc != 0:
            why = "no room in the KV cache" if rc == 1 else f"llama_decode returned {rc}"
            raise RuntimeError(f"llama.cpp could not decode a batch of {n} tokens ({why})")
        rows = int(np.count_nonzero(outputs))
        if rows == 0:
            return np.zeros((0, self.engine.n_vocab), np.float32)
        ptr = L.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(rows, self.engine.n_vocab)).copy()

    def clear(self) -> None:
        """Empty the KV cache (the next tokens fill it from its first cell, in batch order)."""
        self.L.llama_memory_clear(self.mem, True)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.L.llama_free(self.ctx)
            self.ctx = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass
