"""Backends by kind: ``ModelInfo.kind`` -> the loader that builds its :class:`~rai_audit.backend.Backend`.

The runner never names a backend class: it asks this registry for the loader of the resolved
model's kind (:func:`bound_loader`), so a new backend (a served model, vLLM, ...) plugs in with
one call and no change to the runner::

    from rai_audit.models.registry import BackendOptions, register_backend

    def load_served(info: ModelInfo, options: BackendOptions) -> Backend:
        return ServedBackend(info, url=info.path, batch_size=options.batch_size)

    def resolve_served(ref: str) -> ModelInfo:  # "served:http://host:8000/model"
        return ModelInfo(model_id=..., reference=ref, kind="served", path=ref.split(":", 1)[1])

    register_backend("served", load_served, resolver=resolve_served)

* ``loader(info, options)`` returns a loaded backend; ``options`` are the audit's runtime
  settings (device, dtype, batch size), which a backend may ignore. For the Ray executor the
  loader travels to the workers by pickle, so make it a module-level function (or a picklable
  callable) of a module the workers can import, and register the kind in that module.
* ``resolver(reference)`` (optional) resolves references written ``KIND:...`` (here
  ``served:...``) into a :class:`ModelInfo` of that kind; other references go to
  :func:`rai_audit.models.reference.resolve` ("hf:..." hub models, directories, .gguf files,
  "default"). ``model_id`` must identify the model's behaviour (weights, revision): answers are
  cached under it.
* ``check(options)`` (optional) validates the options before any run row is written (the
  transformers backend checks that a requested CUDA device exists).

Built in: "hf" (hub snapshots) and "dir" (local directories), loaded by
:class:`~rai_audit.models.hf_backend.HFBackend`, and "gguf" (through its converted copy,
:mod:`.default_model`, by the same class); "openai-compat" (a served model), "vllm" (the vLLM
engine on a GPU) and "llama-cpp" (a GGUF run by llama.cpp in this process, :mod:`.llamacpp`).
Heavy imports happen inside the loaders only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from rai_audit.backend import Backend, ModelInfo
from rai_audit.errors import ModelLoadError


@dataclass(frozen=True)
class BackendOptions:
    """Runtime settings handed to every loader (``runtime`` in the audit configuration)."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None

    @classmethod
    def from_runtime(cls, runtime: Any) -> "BackendOptions":
        """From a :class:`rai_audit.config.RuntimeConfig` (or anything with those attributes)."""
        return cls(device=runtime.device, dtype=runtime.dtype, batch_size=runtime.batch_size)


Loader = Callable[[ModelInfo, BackendOptions], Backend]
Resolver = Callable[[str], ModelInfo]


@dataclass(frozen=True)
class BackendKind:
    kind: str
    loader: Loader
    resolver: Resolver | None = None
    check: Callable[[BackendOptions], None] | None = None


_KINDS: dict[str, BackendKind] = {}


def register_backend(kind: str, loader: Loader, *, resolver: Resolver | None = None,
                     check: Callable[[BackendOptions], None] | None = None, replace: bool = False) -> None:
    """Make ``loader`` the backend of models whose ``ModelInfo.kind`` is ``kind`` (see the module
    docstring). Registering a kind twice is an error unless ``replace``."""
    if not kind or ":" in kind:
        raise ValueError(f"A backend kind is a non-empty name without ':' (got {kind!r}).")
    if kind in _KINDS and not replace:
        raise ValueError(f"A backend is already registered for kind {kind!r}; pass replace=True to replace it.")
    _KINDS[kind] = BackendKind(kind, loader, resolver, check)


def unregister_backend(kind: str) -> None:
    """Forget ``kind`` (tests, plugins being unloaded); unknown kinds are ignored."""
    _KINDS.pop(kind, None)


def backend_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_KINDS)


def _entry(kind: str) -> BackendKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise ModelLoadError(
            f"No model backend is registered for models of kind {kind!r} (registered: "
            f"{', '.join(_KINDS) or 'none'}). Register one with rai_audit.models.registry.register_backend."
        ) from None


def get_loader(kind: str) -> Loader:
    """The loader registered for ``kind`` (ModelLoadError naming the registered kinds if none)."""
    return _entry(kind).loader


def resolve_model(ref: str) -> ModelInfo:
    """Resolve a reference: ``KIND:...`` through that kind's resolver when it registered one,
    anything else through :func:`rai_audit.models.reference.resolve`."""
    if isinstance(ref, str) and ":" in ref:
        entry = _KINDS.get(ref.split(":", 1)[0].strip())
        if entry is not None and entry.resolver is not None:
            return entry.resolver(ref.strip())
    from rai_audit.models.reference import resolve

    return resolve(ref)


def check_options(kind: str, options: BackendOptions) -> None:
    """Validate ``options`` for ``kind`` before a run starts (no-op for kinds without a check)."""
    check = _entry(kind).check
    if check is not None:
        check(options)


def load_backend(info: ModelInfo, options: BackendOptions | None = None) -> Backend:
    """Load ``info`` with the loader of its kind."""
    return get_loader(info.kind)(info, options or BackendOptions())


def _call(loader: Loader, options: BackendOptions, info: ModelInfo) -> Backend:
    return loader(info, options)


def bound_loader(kind: str, options: BackendOptions) -> Callable[[ModelInfo], Backend]:
    """``info -> backend`` for models of ``kind`` with ``options`` bound: what the runner hands to
    the executors (looked up now, so an unknown kind fails before the run starts; picklable when
    the registered loader is)."""
    return functools.partial(_call, get_loader(kind), options)


# -- built-in kinds ---------------------------------------------------------------------------
def load_transformers(info: ModelInfo, options: BackendOptions) -> Backend:
    """hf / dir / gguf: :class:`~rai_audit.models.hf_backend.HFBackend` (GGUF via its converted copy)."""
    from rai_audit.models.hf_backend import HFBackend

    return HFBackend.load(info, device=options.device, dtype=options.dtype, batch_size=options.batch_size)


def check_torch_device(options: BackendOptions) -> None:
    """A requested device other than auto/cpu must exist here (imports torch only then)."""
    if options.device not in (None, "auto", "cpu"):
        from rai_audit.models.hf_backend import pick_device

        pick_device(options.device)


for _kind in ("hf", "dir", "gguf"):
    register_backend(_kind, load_transformers, check=check_torch_device)


# -- served and GPU-engine kinds (docs/served-models.md, docs/scaling.md) -----------------------
def load_openai_compat(info: ModelInfo, options: BackendOptions) -> Backend:
    """openai-compat: a model behind an OpenAI-compatible server (:mod:`.openai_compat`)."""
    from rai_audit.models.openai_compat.backend import load

    return load(info, options)


def resolve_openai_compat(ref: str) -> ModelInfo:
    from rai_audit.models.openai_compat.resolve import resolve

    return resolve(ref)


def load_vllm(info: ModelInfo, options: BackendOptions) -> Backend:
    """vllm: the offline ``vllm.LLM`` engine on a GPU (:mod:`.vllm_backend`)."""
    from rai_audit.models.vllm_backend import load

    return load(info, options)


def resolve_vllm(ref: str) -> ModelInfo:
    from rai_audit.models.vllm_backend import resolve

    return resolve(ref)


def load_llama_cpp(info: ModelInfo, options: BackendOptions) -> Backend:
    """llama-cpp: a GGUF file run by llama.cpp in this process (:mod:`.llamacpp`, docs/backends.md)."""
    from rai_audit.models.llamacpp.backend import load

    return load(info, options)


def resolve_llama_cpp(ref: str) -> ModelInfo:
    from rai_audit.models.llamacpp.reference import resolve

    return resolve(ref)


def check_llama_cpp(options: BackendOptions) -> None:
    from rai_audit.models.llamacpp.backend import check

    check(options)


register_backend("openai-compat", load_openai_compat, resolver=resolve_openai_compat)
register_backend("vllm", load_vllm, resolver=resolve_vllm)
register_backend("llama-cpp", load_llama_cpp, resolver=resolve_llama_cpp, check=check_llama_cpp)
