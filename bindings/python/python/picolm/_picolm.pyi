"""Type stubs of the native module ``picolm._picolm`` (re-exported by :mod:`picolm`)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Iterator, Literal, Optional, Sequence, Union, overload

__version__: str

_Stop = Union[str, Sequence[str], None]
_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]
_Schema = Union[dict[str, Any], str, None]
_Json = Union[bool, Literal["object", "value"], None]
_Message = dict[str, Any]
"""A chat message in OpenAI's format: ``role`` ("system", "user", "assistant", "tool"), ``content`` (a str, None,
or a list of ``{"type": "text", "text": ...}`` parts, joined with newlines), and where they apply ``tool_call_id``,
``name`` and, on assistant messages, ``tool_calls`` (``[{"id", "type": "function", "function": {"name",
"arguments"}}]``, arguments as JSON text or a dict). Assistant tool calls are rendered into the prompt: by the
model's template when it knows ``tool_calls``, else as ``{"tool_calls":[...]}`` after the content."""
_ToolDef = Union[Any, dict[str, Any]]
"""A :class:`picolm.Tool`, or an OpenAI tool dict ``{"type": "function", "function": {"name", "description",
"parameters"}}`` (an external tool: its calls end the loop as pending calls)."""

_StopReason = Literal[
    "eog", "max_tokens", "stop_string", "grammar_complete", "context_full", "cancelled", "callback_stopped"
]
"""Why a generation ended (the same names as C's ``picolm_stop_reason_name`` and the CLI's statistics):
"eog" (an end-of-generation token), "max_tokens", "stop_string", "grammar_complete" (the ``json``/``schema``
output is complete), "context_full", "cancelled" (Ctrl-C, ``TokenStream.close()``, ``Model.close()``), and
"callback_stopped" (a piece callback of the C API asked to stop; Python's calls have no such callback)."""
_AgentStop = Literal["answered", "max_iterations", "cancelled", "tool_calls_pending"]
"""How a tool-call loop ended (the same names as C's ``picolm_agent_stop_name``)."""

STOP_REASONS: tuple[_StopReason, ...]
"""Every name :attr:`GenerationResult.stop_reason` can take, in picolm-core's order."""
AGENT_STOPS: tuple[_AgentStop, ...]
"""Every name :attr:`AgentResult.stop` can take, in picolm-core's order."""

def _defaults() -> dict[str, dict[str, Any]]:
    """The defaults of the keyword options of ``Model()``, ``generate``/``generate_full``/``chat`` and
    ``run_tools``, from picolm-core's ``Default`` impls (the signatures show the same values)."""

class GenerationResult:
    """The outcome of a finished generation: text, token ids, stop reason, counters and timings."""

    text: str
    """The generated text (stop strings excluded)."""
    tokens: list[int]
    """Generated token ids (a final end-of-generation token included, as llama.cpp reports it)."""
    stop_reason: _StopReason
    """Why generation ended: "eog", "max_tokens", "stop_string", "grammar_complete", "context_full" or
    "cancelled" (see ``_StopReason``)."""
    n_prompt: int
    """Prompt length in tokens."""
    n_reused: int
    """Prompt tokens whose KV-cache entries were reused from the previous call (prefix caching)."""
    n_generated: int
    """Number of generated tokens."""
    prefill_seconds: float
    """Seconds spent evaluating the (non-reused part of the) prompt."""
    decode_seconds: float
    """Seconds spent generating tokens."""
    @property
    def prefill_tokens_per_second(self) -> float:
        """Prompt tokens evaluated per second (reused tokens excluded)."""
    @property
    def decode_tokens_per_second(self) -> float:
        """Generated tokens per second."""

class TokenStream(Iterator[str]):
    """Iterator over the text pieces of ``Model.generate(..., stream=True)``.

    Pieces are whole UTF-8 characters and never contain (part of) a stop string. The stream is ended early by
    ``close()`` (or leaving its ``with`` block), and invalidated by any later generation, ``reset()``,
    ``load_state()`` or ``close()`` on the same model: its next step then raises :class:`PicoLMError`
    (:class:`ClosedError` after ``Model.close()``).
    """

    def __iter__(self) -> TokenStream:
        """Returns the stream itself."""
    def __next__(self) -> str:
        """Computes tokens until the next non-empty piece of text (GIL released)."""
    def close(self) -> None:
        """Ends the generation early (its result gets stop_reason "cancelled"). Idempotent."""
    @property
    def result(self) -> Optional[GenerationResult]:
        """The :class:`GenerationResult` once the stream has ended, else ``None``."""
    @property
    def finished(self) -> bool:
        """Whether the stream has ended."""
    def __enter__(self) -> TokenStream:
        """Returns the stream itself."""
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        """Closes the stream."""

class Model:
    """A GGUF model loaded for CPU inference, with one evaluation session (KV cache).

    The session is reused across calls: a prompt that starts with the tokens of the previous prompt and output
    only evaluates the new part (prefix caching). Calls from several threads on the same model are serialised;
    several models work in parallel. The GIL is released while tokens are computed.

    Args:
        path: The ``.gguf`` file (str, bytes or ``os.PathLike``, encoded like :func:`open` does).
        model_path: The same, under the name llama-cpp-python uses (give ``path`` or ``model_path``).
        n_ctx: Context length in tokens (0 = the model's training context, at most 4096: the library default
            shared with C and the CLI). A context longer than the training context is accepted with a
            :class:`picolm.PicoLMWarning`.
        n_threads: Compute threads (0 = one per CPU). More than the CPUs available to the process (affinity and
            cgroup quota respected) is lowered to that count with a :class:`picolm.PicoLMWarning`;
            :attr:`n_threads` tells the threads used.
        seed: Default sampling seed for ``generate`` calls that pass ``seed=None``.
        kv_type: Storage of the KV cache: ``"f16"`` or ``"q8_0"`` (about half the memory; also ``"q8"``, as the
            CLI and C accept: the names are parsed by picolm-core).
        stream_weights: Streaming mode (for machines with less RAM than the model): the file is not mapped; the
            weights are read into two reused slabs (one read ahead while the other computes) and dropped from the
            page cache, so weight memory is two slabs whatever the model size.
        n_batch: Largest number of prompt tokens evaluated per forward pass.
        max_rss_bytes: A bound on the process's resident memory (0 = none), the Python interpreter included: the
            model is mapped when it fits with its KV cache and buffers, streamed otherwise with slabs sized to
            fit; when even streaming cannot fit, :class:`ModelLoadError` says how many MiB are needed.

    Raises:
        ModelLoadError: The file is missing or malformed, or the model is not supported.
        InvalidArgumentError: A setting is out of range, or the path cannot be encoded (a lone surrogate).
        OutOfMemoryError: The KV cache for ``n_ctx`` (or another buffer sized by a setting) cannot be allocated;
            the message gives the bytes. Also a ``MemoryError``.
        TypeError: Neither or both of ``path`` and ``model_path`` are given.
    """

    @overload
    def __init__(
        self,
        path: _Path,
        *,
        n_ctx: int = 0,
        n_threads: int = 0,
        seed: int = 0,
        kv_type: Literal["f16", "q8_0", "q8"] = "f16",
        stream_weights: bool = False,
        n_batch: int = 64,
        max_rss_bytes: int = 0,
    ) -> None: ...
    @overload
    def __init__(
        self,
        *,
        model_path: _Path,
        n_ctx: int = 0,
        n_threads: int = 0,
        seed: int = 0,
        kv_type: Literal["f16", "q8_0", "q8"] = "f16",
        stream_weights: bool = False,
        n_batch: int = 64,
        max_rss_bytes: int = 0,
    ) -> None: ...
    def __init__(
        self,
        path: Optional[_Path] = None,
        *,
        model_path: Optional[_Path] = None,
        n_ctx: int = 0,
        n_threads: int = 0,
        seed: int = 0,
        kv_type: Literal["f16", "q8_0", "q8"] = "f16",
        stream_weights: bool = False,
        n_batch: int = 64,
        max_rss_bytes: int = 0,
    ) -> None: ...
    @overload
    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: _Stop = None,
        stream: Literal[False] = False,
        add_bos: bool = True,
        parse_special: bool = True,
        json: _Json = None,
        schema: _Schema = None,
    ) -> str: ...
    @overload
    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: _Stop = None,
        stream: Literal[True],
        add_bos: bool = True,
        parse_special: bool = True,
        json: _Json = None,
        schema: _Schema = None,
    ) -> TokenStream: ...
    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: _Stop = None,
        stream: bool = False,
        add_bos: bool = True,
        parse_special: bool = True,
        json: _Json = None,
        schema: _Schema = None,
    ) -> Union[str, TokenStream]:
        """Generates a continuation of ``prompt``.

        Sampling is greedy when ``temperature <= 0`` (the default); otherwise penalties, top-k, top-p, min-p and
        temperature are applied in llama.cpp's order and a token is drawn with ``seed`` (``None`` = the model's
        default seed), so the same call gives the same text. Generation ends at an end-of-generation token,
        after ``max_tokens`` tokens, before any of the ``stop`` strings, or when the context is full.

        Returns the text, or with ``stream=True`` a :class:`TokenStream` of text pieces (the prompt is evaluated
        before this returns, so prompt errors are raised here).

        ``json=True`` (or ``"object"``) constrains the output to one JSON object, ``json="value"`` to any JSON
        value (also bare numbers and strings), ``schema`` (a dict or JSON text) to JSON valid against that JSON
        Schema; constrained output is compact (no insignificant whitespace) and always finishes within
        ``max_tokens`` (the mask keeps enough tokens to close it).

        Sampler ranges (checked by picolm-core, the same rules as C and the CLI): ``temperature >= 0``,
        ``0 <= top_p <= 1``, ``0 <= min_p <= 1``, ``repeat_penalty > 0``, counts ``>= 0``.

        Raises:
            ContextOverflowError: The prompt does not fit in the context.
            GrammarError: ``schema`` uses an unsupported keyword or is invalid.
            BudgetError: ``max_tokens`` (or the room left in the context) is too small for the shortest output
                ``json``/``schema`` allow, counted in the model's tokens.
            InvalidArgumentError: A sampler setting is out of range, the prompt is empty, or a str argument is not
                valid Unicode (a lone surrogate).
            OutOfMemoryError: A buffer sized by a setting cannot be allocated (any ``repeat_last_n`` is fine: the
                penalty window grows with the tokens seen, at most the context).
            ClosedError: The model was closed.
            KeyboardInterrupt: On Ctrl-C (checked between prompt batches and between tokens).
        """
    def generate_full(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: _Stop = None,
        add_bos: bool = True,
        parse_special: bool = True,
        json: _Json = None,
        schema: _Schema = None,
    ) -> GenerationResult:
        """Like ``generate(stream=False)`` but returns a :class:`GenerationResult` (text, token ids, stop reason,
        prompt/reuse counters and timings)."""
    def chat(
        self,
        messages: Sequence[_Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: _Stop = None,
        stream: bool = False,
        json: _Json = None,
        schema: _Schema = None,
    ) -> Union[str, TokenStream]:
        """Answers a conversation: ``messages`` is a list of OpenAI-style message dicts (see ``_Message``: roles
        system, user, assistant, tool; content as a str or text parts; assistant ``tool_calls``) rendered with the
        model's own chat template (``tokenizer.chat_template`` in a sandboxed Jinja engine) or a built-in ChatML /
        Zephyr / Llama 2 / Llama 3 format. Same options and errors as :meth:`generate`; a message that is not in
        that format is :class:`picolm.InvalidArgumentError`."""
    def apply_chat_template(self, messages: Sequence[_Message], *, add_generation_prompt: bool = True) -> str:
        """The prompt text the chat template makes of ``messages``."""
    def run_tools(
        self,
        messages: Sequence[_Message],
        tools: Sequence[_ToolDef],
        *,
        tool_choice: Literal["auto", "required", "none"] = "auto",
        max_iterations: int = 5,
        max_tokens: int = 192,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: Optional[int] = None,
        on_event: Optional[Any] = None,
    ) -> AgentResult:
        """Runs the tool-call loop (see :class:`picolm.Tool`): each step the model answers in text or emits
        ``{"tool_calls":[{"id":...,"type":"function","function":{"name":...,"arguments":{...}}}]}`` constrained
        to a registered tool and arguments valid for its schema; the handler is called with the arguments as a
        dict and its result (or its exception's message) goes back as a ``tool`` message; repeat until an answer
        or ``max_iterations``. ``tools`` holds :class:`picolm.Tool` objects and/or OpenAI tool dicts
        (``{"type": "function", "function": {"name", "description", "parameters"}}``, external tools as in C's
        ``picolm_agent_add_tools_json`` and the CLI's ``--tools``). ``tool_choice="required"`` makes the model
        call a tool before it may answer. The KV cache is reused across steps. ``on_event(kind, data)`` sees
        ``"tool_call"``, ``"tool_result"`` and ``"answer_piece"`` events; a ``"tool_result"``'s ``truncated`` is
        True when the result was cut (by tokens, with a marker) to fit the context. ``tool_choice="auto"`` answers
        in text when ``max_tokens`` cannot hold a tool call; ``"required"`` then raises :class:`BudgetError`.

        A handler's ``Exception`` is logged with its traceback on the ``"picolm"`` logger and its message goes to
        the model; ``KeyboardInterrupt``, ``SystemExit`` and other non-``Exception`` errors stop the loop and
        propagate.

        Raises:
            InvalidArgumentError: A tool definition, message or setting is invalid.
            GrammarError: A tool's parameter schema cannot be enforced.
            BudgetError: ``tool_choice="required"`` and ``max_tokens`` cannot hold a call.
            KeyboardInterrupt: On Ctrl-C, or raised by a handler (as any non-``Exception`` a handler raises).
        """
    @property
    def last_result(self) -> Optional[GenerationResult]:
        """The :class:`GenerationResult` of the last finished generation on this model (streams included)."""
    def tokenize(self, text: str, *, add_bos: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_bos`` adds BOS/EOS as the vocabulary asks, ``parse_special`` turns
        control-token text such as ``<|im_start|>`` into those tokens."""
    def detokenize(self, ids: Sequence[int], *, special: bool = False) -> str:
        """The text of a token sequence (invalid UTF-8 replaced by U+FFFD); ``special`` renders control tokens.

        Raises:
            InvalidArgumentError: An id is outside the vocabulary.
        """
    def detokenize_bytes(self, ids: Sequence[int], *, special: bool = False) -> bytes:
        """The exact bytes of a token sequence (see :meth:`detokenize`)."""
    def save_state(self, path: _Path) -> None:
        """Writes the session state (cached tokens, keys/values, logits, the model's fingerprint and a checksum)
        to ``path``, atomically (a temporary file in the same directory, synced, then renamed). ``path`` may be
        new, an empty file or a PicoLM state, which is replaced; a symbolic link is written through to its
        existing target.

        Raises:
            StateError: The file cannot be written, or ``path`` is another kind of file (a model, a text, a FIFO,
                a device, a directory), which is left untouched.
        """
    def load_state(self, path: _Path) -> None:
        """Restores a state written by :meth:`save_state` from the same model file (checked by fingerprint) with
        the same ``kv_type`` and enough context; the next generation whose prompt starts with the saved tokens
        reuses them.

        Raises:
            StateError: The file is missing, not a regular file (a FIFO is refused without blocking), not a
                state, from another model, or damaged, truncated or extended (checksum and exact length); the
                session is then reset.
        """
    def reset(self) -> None:
        """Forgets the cached tokens (the next generation evaluates its whole prompt)."""
    @property
    def cached_tokens(self) -> list[int]:
        """Token ids currently held in the KV cache."""
    def close(self) -> None:
        """Releases the model and its memory. Idempotent; any later use raises :class:`ClosedError`. A
        generation or tool loop running on another thread is cancelled first (it returns what it has, with
        stop_reason "cancelled", or raises :class:`ClosedError` if it was still reading its prompt), so ``close``
        returns within about one token's time."""
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
    def __enter__(self) -> Model:
        """Returns the model itself."""
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        """Closes the model."""
    @property
    def path(self) -> str:
        """The file the model was loaded from."""
    @property
    def n_ctx(self) -> int:
        """Context length of the session, in tokens."""
    @property
    def n_vocab(self) -> int:
        """Vocabulary size."""
    @property
    def n_threads(self) -> int:
        """Number of compute threads."""
    @property
    def bos_id(self) -> Optional[int]:
        """Beginning-of-sequence token id, if the vocabulary has one."""
    @property
    def eos_id(self) -> Optional[int]:
        """End-of-sequence token id, if the vocabulary has one."""
    @property
    def eog_ids(self) -> list[int]:
        """Token ids that end a generation."""
    @property
    def metadata(self) -> dict[str, Any]:
        """GGUF metadata (``general.architecture``, ``llama.context_length``...). Arrays longer than 1024
        elements (e.g. ``tokenizer.ggml.tokens``) are summarised as a string such as ``"array<string>[49152]"``;
        use :meth:`metadata_value` for the full value."""
    def metadata_value(self, key: str, default: Any = None) -> Any:
        """One GGUF metadata value, arrays in full; ``default`` when the key is absent."""
    def memory(self) -> dict[str, int]:
        """Memory in bytes: ``kv_cache``, ``scratch``, ``model_file``, and on Linux the process' ``rss``,
        ``peak_rss``, ``rss_anon``, ``rss_file``."""

class AgentResult:
    """The outcome of :meth:`Model.run_tools`."""

    answer: str
    """The final text answer ("" unless ``stop == "answered"``)."""
    stop: _AgentStop
    """How the run ended (the same names as C's ``picolm_agent_stop_name``)."""
    iterations: int
    """Model steps run, each ending in a tool call or the answer (at most ``max_iterations``); a forced answer
    (the step redone as text after the model repeated a call it already made) is part of its step, not an extra
    iteration."""
    messages: list[dict[str, Any]]
    """The conversation after the run in OpenAI's message shape, tool calls and results included."""
    calls: list[dict[str, Any]]
    """Executed calls: ``{"id", "name", "arguments" (dict), "result" (str)}``."""
    pending_calls: list[dict[str, Any]]
    """Calls of external tools (handler None) in OpenAI's shape, waiting for results."""
    tool_calls_json: Optional[str]
    """``{"tool_calls": [...]}`` of the pending calls as JSON text (PicoClaw's format), or None."""
