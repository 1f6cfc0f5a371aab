"""Exceptions raised by :mod:`picolm` (all derive from :class:`PicoLMError`) and its warning category."""

from __future__ import annotations

__all__ = [
    "PicoLMError",
    "ModelLoadError",
    "ContextOverflowError",
    "GrammarError",
    "BudgetError",
    "InvalidArgumentError",
    "StateError",
    "OutOfMemoryError",
    "ClosedError",
    "PicoLMWarning",
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
    """An argument is out of range or malformed (sampler settings, token ids, sizes, empty prompt, messages not
    in OpenAI's chat format, text or paths that are not valid Unicode such as a lone surrogate...)."""


class StateError(PicoLMError):
    """A saved session state cannot be written, read, or does not fit this model."""


class OutOfMemoryError(PicoLMError, MemoryError):
    """A buffer sized by a setting (the KV cache for ``n_ctx``, the activation buffers for ``n_batch``, the
    logits...) could not be allocated; the message gives the size. Also a :class:`MemoryError`. Lower ``n_ctx``
    (or use ``kv_type="q8_0"``)."""


class ClosedError(PicoLMError):
    """The model was closed (``Model.close()`` or leaving its ``with`` block) and cannot be used any more."""


class PicoLMWarning(UserWarning):
    """An accepted but questionable setting, issued with :func:`warnings.warn` (for example ``n_ctx`` larger than
    the context the model was trained with)."""
