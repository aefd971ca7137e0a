"""Audit a model where it is served: the ``openai-compat`` backend (docs/served-models.md).

Reference: ``openai-compat:http://127.0.0.1:8080/v1#model-name`` (options in :mod:`.endpoint`).
One concept per module:

- :mod:`.endpoint`: the reference syntax and its options (the API key's variable name, never the key);
- :mod:`.client`: JSON over HTTP with timeouts, retries and backoff, and what each failure becomes;
- :mod:`.capabilities`: which settings the server honours, tested by behaviour at resolve time;
- :mod:`.fingerprint`: the behavioural model id (no weights to hash);
- :mod:`.resolve`: the resolver (reference -> :class:`.info.ServedModelInfo`);
- :mod:`.payloads`: generation requests as API bodies, answers back as results;
- :mod:`.loglik`: log-likelihood from echoed prompt log-probabilities;
- :mod:`.backend`: the backend (thread-pool fan-out) and its loader.

The kind is registered in :mod:`rai_audit.models.registry`; nothing here is imported until a
served reference is resolved or loaded.
"""
