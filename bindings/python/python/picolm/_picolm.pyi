"""Type stubs of the native module ``picolm._picolm`` (re-exported by :mod:`picolm`)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Iterator, Literal, Optional, Sequence, Union, overload

__version__: str

_Stop = Union[str, Sequence[str], None]
_Path = Union[str, os.PathLike[str]]
_Schema = Union[dict[str, Any], str, None]
_Json = Union[bool, Literal["object", "value"], None]
_Message = dict[str, str]

class GenerationResult:
    """The outcome of a finished generation: text, token ids, stop reason, counters and timings."""

    text: str
    """The generated text (stop strings excluded)."""
    tokens: list[int]
    """Generated token ids (a final end-of-generation token included, as llama.cpp reports it)."""
    stop_reason: str
    """Why generation ended: "eog", "max_tokens", "stop_string", "context_full" or "cancelled"."""
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
        path: The ``.gguf`` file.
        n_ctx: Context length in tokens (0 = the model's training context, at most 4096).
        n_threads: Compute threads (0 = one per CPU).
        seed: Default sampling seed for ``generate`` calls that pass ``seed=None``.
        kv_type: Storage of the KV cache: ``"f16"`` or ``"q8_0"`` (about half the memory).
        stream_weights: Page the weights in slab by slab (for machines with less RAM than the model).
        n_batch: Largest number of prompt tokens evaluated per forward pass.

    Raises:
        ModelLoadError: The file is missing or malformed, or the model is not supported.
        InvalidArgumentError: A setting is out of range.
    """

    def __init__(
        self,
        path: _Path,
        *,
        n_ctx: int = 0,
        n_threads: int = 0,
        seed: int = 0,
        kv_type: Literal["f16", "q8_0"] = "f16",
        stream_weights: bool = False,
        n_batch: int = 64,
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

        Raises:
            ContextOverflowError: The prompt does not fit in the context.
            GrammarError: ``schema`` uses an unsupported keyword or is invalid.
            BudgetError: ``max_tokens`` (or the room left in the context) is too small for the shortest output
                ``json``/``schema`` allow, counted in the model's tokens.
            InvalidArgumentError: A sampler setting is out of range or the prompt is empty.
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
        """Answers a conversation: ``messages`` is a list of ``{"role": ..., "content": ...}`` dicts (roles
        system, user, assistant, tool) rendered with the model's own chat template (``tokenizer.chat_template``
        in a sandboxed Jinja engine) or a built-in ChatML / Zephyr / Llama 2 / Llama 3 format. Same options and
        errors as :meth:`generate`."""
    def apply_chat_template(self, messages: Sequence[_Message], *, add_generation_prompt: bool = True) -> str:
        """The prompt text the chat template makes of ``messages``."""
    def run_tools(
        self,
        messages: Sequence[_Message],
        tools: Sequence[Any],
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
        or ``max_iterations``. ``tool_choice="required"`` makes the model call a tool before it may answer. The
        KV cache is reused across steps. ``on_event(kind, data)`` sees ``"tool_call"``, ``"tool_result"`` and
        ``"answer_piece"`` events; a ``"tool_result"``'s ``truncated`` is True when the result was cut (by
        tokens, with a marker) to fit the context. ``tool_choice="auto"`` answers in text when ``max_tokens`` cannot
        hold a tool call; ``"required"`` then raises :class:`BudgetError`."""
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
        """Writes the session state (cached tokens, keys/values, logits) to ``path``.

        Raises:
            StateError: The file cannot be written.
        """
    def load_state(self, path: _Path) -> None:
        """Restores a state written by :meth:`save_state` of a model with the same shape; the next generation
        whose prompt starts with the saved tokens reuses them.

        Raises:
            StateError: The file is missing, damaged or from another model (the session is then reset).
        """
    def reset(self) -> None:
        """Forgets the cached tokens (the next generation evaluates its whole prompt)."""
    @property
    def cached_tokens(self) -> list[int]:
        """Token ids currently held in the KV cache."""
    def close(self) -> None:
        """Releases the model and its memory. Idempotent; any later use raises :class:`ClosedError`."""
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
    stop: str
    """"answered", "max_iterations", "cancelled" or "tool_calls_pending"."""
    iterations: int
    """Model steps run."""
    messages: list[dict[str, str]]
    """The conversation after the run, tool calls and results included."""
    calls: list[dict[str, Any]]
    """Executed calls: ``{"id", "name", "arguments" (dict), "result" (str)}``."""
    pending_calls: list[dict[str, Any]]
    """Calls of external tools (handler None) in OpenAI's shape, waiting for results."""
    tool_calls_json: Optional[str]
    """``{"tool_calls": [...]}`` of the pending calls as JSON text (PicoClaw's format), or None."""
