""":class:`ServedModelInfo`: a :class:`~rai_audit.backend.ModelInfo` with what the server told us.

A served model has no weight files, so ``files`` stays empty and the identity evidence goes into
``served`` (a plain mapping, stored with the model and in every run's provenance as
``model.served.*``): the endpoint, the served model name, what the server reports about itself,
the fingerprint answers, the capabilities found, and warnings. It never holds the API key, only
the name of the variable that does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rai_audit.backend import ModelInfo


@dataclass(frozen=True)
class ServedModelInfo(ModelInfo):
    """``kind == "openai-compat"``; ``path`` is the base URL, ``served`` the server's evidence."""

    served: dict[str, Any] = field(default_factory=dict)

    @property
    def capabilities(self) -> dict[str, Any]:
        return dict(self.served.get("capabilities") or {})

    @property
    def served_model(self) -> str:
        return str(self.served.get("served_model") or "")
