"""Exceptions raised by :mod:`picolm` (all derive from :class:`PicoLMError`)."""

from __future__ import annotations

__all__ = [
    "PicoLMError",
    "ModelLoadError",
    "ContextOverflowError",
    "GrammarError",
    "BudgetError",
    "InvalidArgumentError",
    "StateError",
    "ClosedError",
]


class PicoLMError(Exception):
    """Base class of every error PicoLM raises."""


class ModelLoadError(PicoLMError):
    """The model file is missing, unreadable, malformed, or describes an unsupported model."""


class ContextOverflowError(PicoLMError):
    """The prompt (or prompt plus generated tokens) does not fit in the context (``n_ctx``)."""


class GrammarError(PicoLMError):
    """A grammar or JSON schema is invalid, or constrained output cannot continue."""


class BudgetError(PicoLMError):
    """``max_tokens`` (or the room left in the context) cannot hold the shortest output that ``json``/``schema``
    (or a required tool call) allows, counted in the model's tokens: raise ``max_tokens`` (or ``n_ctx``)."""


class InvalidArgumentError(PicoLMError, ValueError):
    """An argument is out of range (sampler settings, token ids, sizes, empty prompt...)."""


class StateError(PicoLMError):
    """A saved session state cannot be written, read, or does not fit this model."""


class ClosedError(PicoLMError):
    """The model was closed (``Model.close()`` or leaving its ``with`` block) and cannot be used any more."""
