"""Model backends: resolve a reference, load it, answer batched requests, cache answers.

- :func:`resolve` / :func:`describe` (:mod:`.reference`): reference -> ModelInfo, no weights loaded.
- :class:`~.hf_backend.HFBackend` (:mod:`.hf_backend`): the transformers/torch backend.
- :class:`~.cached.CachedBackend` (:mod:`.cached`): answers from the results store first.
- :mod:`.registry`: model kind -> backend loader (hf, dir, gguf built in; register others with
  :func:`~.registry.register_backend`).
- :func:`load_backend`: resolve + load in one call, through the registry.

Heavy imports (torch, transformers) happen only when a backend is loaded, so ``rai-audit --help``
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rai_audit.models.reference import ACCEPTED_FORMS, describe, resolve

if TYPE_CHECKING:  # pragma: no cover
    from rai_audit.backend import Backend, ModelInfo


def load_backend(ref: "str | ModelInfo", *, device: str = "auto", dtype: str = "auto",
                 batch_size: int | None = None) -> "Backend":
    """Resolve ``ref`` (if it is a string) and load it with the backend registered for its kind
    (:class:`~.hf_backend.HFBackend` for hub models, directories and .gguf files)."""
    from rai_audit.models import registry

    info = registry.resolve_model(ref) if isinstance(ref, str) else ref
    return registry.load_backend(info, registry.BackendOptions(device=device, dtype=dtype, batch_size=batch_size))


__all__ = ["ACCEPTED_FORMS", "describe", "load_backend", "resolve"]
