"""PicoLM: run Llama-architecture GGUF language models on the CPU.

Example::

    import picolm

    with picolm.Model("models/SmolLM2-135M-Instruct.Q4_1.gguf", n_ctx=512) as m:
        print(m.generate("The capital of France is", max_tokens=16))
        for piece in m.generate("Once upon a time", max_tokens=32, stream=True):
            print(piece, end="", flush=True)

Main names:

- :class:`Model` -- a loaded model with one evaluation session (prefix caching across calls).
- :class:`TokenStream` -- the iterator returned by ``Model.generate(..., stream=True)``.
- :class:`GenerationResult` -- text, token ids, stop reason and timings (``Model.generate_full``).
- :class:`PicoLMError` and its subclasses; :class:`PicoLMWarning` for accepted but questionable settings.

Threads: the GIL is released while tokens are computed, so several models can run in several threads at
once. Calls on the *same* model from several threads are serialised (the later call waits). Starting a new
generation on a model ends any stream still open on it: that stream raises :class:`PicoLMError` on its next
step. Ctrl-C (``KeyboardInterrupt``) is honoured between prompt batches and between generated tokens.
``Model.close()`` from another thread cancels a running generation first, then waits for it to end.

Logging: exceptions raised by tool handlers are logged with their traceback on the ``"picolm"`` logger.
"""

from __future__ import annotations

from . import _errors
from ._errors import (
    BudgetError,
    ClosedError,
    ContextOverflowError,
    GrammarError,
    InvalidArgumentError,
    ModelLoadError,
    OutOfMemoryError,
    PicoLMError,
    PicoLMWarning,
    StateError,
)
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ._picolm import AgentResult, GenerationResult, Model, TokenStream
from ._picolm import __version__ as __version__



@dataclass
class Tool:
    """A tool for :meth:`Model.run_tools` (which also takes OpenAI tool dicts, as external tools).

    ``handler`` is called with the arguments as a dict (valid against ``parameters``, a JSON Schema of an
    object) and returns the result: a str, or anything ``json.dumps`` accepts. An ``Exception`` it raises is
    logged with its traceback on the ``"picolm"`` logger and sent to the model as the tool's error message;
    anything else (``KeyboardInterrupt``, ``SystemExit``) stops the loop and propagates out of ``run_tools``.
    With ``handler=None`` the tool is external: the loop stops with the calls in ``AgentResult.pending_calls`` so
    the caller can run them (PicoClaw's mode).
    """

    name: str
    description: str
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    handler: Optional[Callable[[dict], Any]] = None


__all__ = [
    "Model",
    "Tool",
    "AgentResult",
    "TokenStream",
    "GenerationResult",
    *_errors.__all__,
    "__version__",
]

# Show the public module in reprs and tracebacks (``picolm.ClosedError`` rather than ``picolm._errors...``).
for _name in _errors.__all__:
    getattr(_errors, _name).__module__ = __name__
del _name
