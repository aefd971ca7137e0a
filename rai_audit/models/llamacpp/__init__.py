"""The in-process llama.cpp backend (kind ``llama-cpp``): GGUF files run by llama.cpp's own kernels
through llama-cpp-python's low-level API, in this process (docs/backends.md).

* :mod:`.reference`: ``llama-cpp:PATH.gguf`` / ``llama-cpp:default`` -> :class:`.reference.LlamaCppModelInfo`;
* :mod:`.engine`: the model, contexts made to measure, and batches of many sequences per ``llama_decode``;
* :mod:`.tokenizer`: the transformers tokenizer of a GGUF file (so both backends score the same tokens);
* :mod:`.scoring` (log-likelihood) and :mod:`.sampling_loop` (generation), used by :mod:`.backend`.

Nothing here imports ``llama_cpp`` at module import: the loader and the resolver do, so a machine
without llama-cpp-python can still import the registry.
"""
