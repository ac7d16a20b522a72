"""The exception tree shared by every layer (workers, service, CLI).

``NeuroscribeError``
    ``InvalidInput`` (also a ``ValueError``): something the user gave is wrong; ``field`` names it.
        ``ModelNotFound``: a model name/path or revision that cannot be loaded.
        ``SiteNotFound``: a hook site the architecture does not have.
    ``GenerationError``: an LLM backend failed (network, server error, bad response).

The CLI turns ``InvalidInput`` into a one-line error and exit code 2; the HTTP API (later) into a 4xx.
"""

from __future__ import annotations

__all__ = ["NeuroscribeError", "InvalidInput", "ModelNotFound", "SiteNotFound", "GenerationError"]


class NeuroscribeError(Exception):
    """Base class of every error neuroscribe raises on purpose."""


class InvalidInput(NeuroscribeError, ValueError):
    """A user-supplied value is wrong. ``field`` names it (e.g. ``"tau"``, ``"sentences:12"``)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ModelNotFound(InvalidInput):
    """The model name, local path or revision cannot be resolved."""


class SiteNotFound(InvalidInput):
    """The requested hook site does not exist for this architecture."""


class GenerationError(NeuroscribeError):
    """An LLM backend failed to produce a completion."""
