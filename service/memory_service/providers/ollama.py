"""Ollama behind mem0: fact extraction (mem0's OllamaLLM) and embeddings (mem0's OllamaEmbedding).

Both providers are mem0's own, given the service's `ollama.Client`, and both are made to behave in
production:

- Time: every Ollama call (all of its attempts and back-off sleeps) fits in OLLAMA_TIMEOUT. The
  client's httpx transport cuts each request's timeouts to what is left of that budget, so a hung
  Ollama costs OLLAMA_TIMEOUT, never (retries + 1) times it.
- Retries with exponential back-off and jitter, for transient failures only: connection refused or
  reset, timeouts, 5xx and 429. A 4xx (an unknown model, a bad request) fails at once.
- Failure: a ServiceUnavailable naming Ollama (503 SERVICE_UNAVAILABLE), never a stack trace.
- Context: mem0's extraction prompt is about 34,000 characters and mem0 sets no context length, so
  Ollama's default (2048-4096 tokens) would silently truncate it. Every chat request carries
  `num_ctx` = OLLAMA_NUM_CTX; the service refuses to start with a value too small for the prompt,
  and a conversation too long for the context is stored as given instead of being truncated.
- Output: small local models often answer with invalid JSON, nothing, or facts in another shape.
  The answer is classified and normalised here (see `normalize_extraction`), and the outcome is
  reported to the engine, which stores the user's messages as given when nothing usable came back.
- Start: the models must exist (mem0 would pull a missing embedding model implicitly; the service
  never pulls, it says what to run), and the embedding dimension is the one the model really
  produces, probed once and compared with EMBEDDING_DIMS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import ollama
from mem0.configs.embeddings.base import BaseEmbedderConfig
from mem0.configs.llms.ollama import OllamaConfig
from mem0.configs.prompts import ADDITIVE_EXTRACTION_PROMPT, AGENT_CONTEXT_SUFFIX
from mem0.embeddings.ollama import OllamaEmbedding
from mem0.llms.ollama import OllamaLLM
from mem0.memory.utils import extract_json, remove_code_blocks

from memory_service.core.context import ExtractionReport, check_cancelled, current_call, ensure_call_context
from memory_service.errors import ServiceUnavailable, StartupError
from memory_service.providers.embedding import Action, TimedEmbedder
from memory_service.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

DEPENDENCY = "ollama"
CONNECT_TIMEOUT = 5.0
PROBE_TIMEOUT = 2.0
BACKOFF_BASE = 0.25
BACKOFF_MAX = 2.0
# Characters per token for the context estimate: ~4 for English with Qwen/Llama tokenizers, 3.5
# leaves headroom; any non-ASCII character counts as a whole token (CJK is ~1-1.5 per token).
CHARS_PER_TOKEN = 3.5
CONTEXT_HEADROOM = 1024
EMPTY_EXTRACTION = '{"memory": []}'


# -- the client -------------------------------------------------------------------------------


class _DeadlineTransport(httpx.HTTPTransport):
    """Cuts every timeout of a request to what is left of the current call's budget."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        context = current_call()
        deadlines = [d for d in (context.ollama_deadline, context.deadline) if d is not None] if context else []
        deadline = min(deadlines) if deadlines else None  # the call's own deadline bounds Ollama too
        if deadline is not None:
            remaining = max(0.001, deadline - time.monotonic())
            current = request.extensions.get("timeout") or dict.fromkeys(("connect", "read", "write", "pool"))
            request.extensions["timeout"] = {
                k: remaining if v is None else min(v, remaining) for k, v in current.items()
            }
        return super().handle_request(request)


class ServiceOllamaClient(ollama.Client):
    """The ollama client with bounded timeouts; every chat request carries num_ctx."""

    def __init__(self, host: str, *, timeout: float, num_ctx: int | None = None) -> None:
        super().__init__(
            host=host,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            transport=_DeadlineTransport(),
        )
        self.num_ctx = num_ctx

    def chat(  # type: ignore[override]  # forwards every argument as is; ollama's overloads only split on stream
        self, *args: Any, options: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        if self.num_ctx is not None:
            options = {**dict(options or {}), "num_ctx": self.num_ctx}
        response = super().chat(*args, options=options, **kwargs)
        used = (getattr(response, "prompt_eval_count", None) or 0) + (getattr(response, "eval_count", None) or 0)
        if self.num_ctx is not None and used >= self.num_ctx:
            log.warning(
                "the chat filled the whole context (%d of num_ctx %d tokens): the prompt may have been truncated; "
                "raise OLLAMA_NUM_CTX",
                used,
                self.num_ctx,
            )
        return response


def make_client(settings: Settings, *, timeout: float | None = None) -> ServiceOllamaClient:
    assert settings.ollama_base_url is not None
    return ServiceOllamaClient(
        settings.ollama_base_url, timeout=timeout or settings.ollama_timeout, num_ctx=settings.ollama_num_ctx
    )


# -- calls: budget, retries, errors -----------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: the server may answer next time. A 4xx will not change."""
    if isinstance(exc, ollama.ResponseError):
        return exc.status_code >= 500 or exc.status_code == 429
    # The ollama client turns httpx.ConnectError into the built-in ConnectionError.
    return isinstance(exc, ConnectionError | httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"Ollama did not answer within {timeout:g}s (OLLAMA_TIMEOUT)"
    if isinstance(exc, ConnectionError | httpx.NetworkError | httpx.RemoteProtocolError):
        return "cannot connect to Ollama"
    if isinstance(exc, ollama.ResponseError):
        hint = "; the model is missing: pull it (see docs/inference.md)" if exc.status_code == 404 else ""
        return f"Ollama answered {exc.status_code}: {str(exc.error)[:200]}{hint}"
    return f"Ollama call failed: {exc.__class__.__name__}"


class OllamaCaller:
    """Runs one Ollama call within OLLAMA_TIMEOUT, retrying transient failures with back-off."""

    def __init__(self, timeout: float, retries: int) -> None:
        self.timeout = timeout
        self.retries = retries

    def __call__(self, what: str, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.timeout
        with ensure_call_context() as context:
            # The transport cuts each request's timeouts to this budget; a caller that misses its
            # own deadline meanwhile reads `waiting_on` to name Ollama as the slow dependency.
            outer = (context.ollama_deadline, context.waiting_on)
            context.ollama_deadline, context.waiting_on = deadline, DEPENDENCY
            try:
                return self._attempts(what, fn, deadline)
            finally:
                context.ollama_deadline, context.waiting_on = outer

    def _attempts(self, what: str, fn: Callable[[], T], deadline: float) -> T:
        attempt = 0
        while True:
            check_cancelled()  # a call cancelled at its deadline makes no further attempt
            try:
                return fn()
            except Exception as exc:
                delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
                if not is_transient(exc) or attempt >= self.retries or time.monotonic() + delay >= deadline:
                    reason = describe(exc, self.timeout)
                    log.warning("ollama %s failed after %d attempt(s): %s", what, attempt + 1, reason)
                    raise ServiceUnavailable(DEPENDENCY, f"{reason}; retry later") from exc
                attempt += 1
                reason = describe(exc, self.timeout)
                log.info("ollama %s failed (%s); retry %d/%d in %.2fs", what, reason, attempt, self.retries, delay)
                time.sleep(delay)


def unavailable_from(exc: BaseException) -> ServiceUnavailable:
    """The ServiceUnavailable behind a mem0 LLMError (mem0 wraps every LLM failure in one)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ServiceUnavailable):
            return cause
        cause = cause.__cause__
    return ServiceUnavailable(DEPENDENCY, "Ollama failed to answer; retry later")


# -- what one extraction produced -------------------------------------------------------------


@contextmanager
def extraction_report() -> Iterator[ExtractionReport]:
    """Collect what the inferred add running in this call extracts (read by the engine)."""
    with ensure_call_context() as context:
        outer = context.extraction
        context.extraction = report = ExtractionReport()
        try:
            yield report
        finally:
            context.extraction = outer


def _current_report() -> ExtractionReport | None:
    context = current_call()
    return context.extraction if context is not None else None


def _loads(text: str) -> object:
    """JSON as mem0 reads it (whole answer, then the span from the first '{' to the last '}')."""
    for candidate in (text, extract_json(text)):
        try:
            return json.loads(candidate, strict=False)
        except (json.JSONDecodeError, TypeError):
            continue
    raise ValueError("not JSON")


def _fact_items(data: object) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("memory", "memories", "facts"):
            value = data.get(key)
            if isinstance(value, list):
                return value
    return None


def normalize_extraction(raw: object) -> tuple[str, list[dict[str, str]]]:
    """Classify the model's answer and return its facts in the shape mem0 expects.

    mem0 reads `{"memory": [{"text": ...}, ...]}`; small models also answer with a bare list, with
    `facts` (mem0's older prompt), or with strings instead of objects. mem0 would drop those
    silently (or crash on strings), so they are rewritten here; anything without a fact is
    reported with its reason.
    """
    # mem0 annotates `str`, but joins a list of content blocks too.
    text = remove_code_blocks(raw) if isinstance(raw, str | list) else ""  # type: ignore[arg-type]
    if not text.strip():
        return "empty_response", []
    try:
        data = _loads(text)
    except ValueError:
        return "invalid_json", []
    items = _fact_items(data)
    if items is None:
        return "unexpected_json", []
    facts: list[dict[str, str]] = []
    for item in items:
        value = item
        if isinstance(item, dict):
            value = next((item[k] for k in ("text", "fact", "memory", "content") if isinstance(item.get(k), str)), None)
        if not isinstance(value, str) or not value.strip():
            continue
        fact = {"id": str(len(facts)), "text": value.strip()}
        if isinstance(item, dict) and isinstance(item.get("attributed_to"), str):
            fact["attributed_to"] = item["attributed_to"]
        facts.append(fact)
    return ("extracted", facts) if facts else ("no_facts", [])


def estimate_tokens(texts: Sequence[str]) -> int:
    total = 0
    for text in texts:
        ascii_chars = len(text.encode("ascii", "ignore"))
        total += int(ascii_chars / CHARS_PER_TOKEN) + (len(text) - ascii_chars) + 8
    return total


def minimum_num_ctx(max_tokens: int) -> int:
    """Context the extraction needs before any conversation: mem0's prompt, the answer, headroom."""
    return estimate_tokens([ADDITIVE_EXTRACTION_PROMPT + AGENT_CONTEXT_SUFFIX]) + max_tokens + CONTEXT_HEADROOM


# -- mem0's providers, on the service's client ------------------------------------------------


class ServiceOllamaLLM(OllamaLLM):
    """mem0's Ollama LLM: same requests, plus num_ctx, the call budget, and a checked answer."""

    def __init__(self, settings: Settings, client: ServiceOllamaClient, caller: OllamaCaller) -> None:
        super().__init__(OllamaConfig(model=settings.ollama_llm_model, ollama_base_url=settings.ollama_base_url))
        self.client = client
        self.caller = caller
        self.num_ctx = settings.ollama_num_ctx

    def generate_response(  # type: ignore[override]  # OllamaLLM's own signature (LLMBase lacks response_format)
        self,
        messages: list[dict[str, str]],
        response_format: Any = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str = "auto",
        **kwargs: Any,
    ) -> Any:
        extraction = isinstance(response_format, dict) and response_format.get("type") == "json_object" and not tools
        report = _current_report()
        if extraction:
            needed = estimate_tokens([m.get("content") or "" for m in messages]) + self.config.max_tokens
            if needed > self.num_ctx:
                log.warning(
                    "the conversation needs about %d tokens, more than OLLAMA_NUM_CTX=%d: not sent to the model "
                    "(it would be truncated); storing the messages as given",
                    needed,
                    self.num_ctx,
                )
                if report is not None:
                    report.outcome = "context_overflow"
                return EMPTY_EXTRACTION
        parent = super().generate_response
        raw = self.caller(
            "chat",
            lambda: parent(messages, response_format=response_format, tools=tools, tool_choice=tool_choice, **kwargs),
        )
        if not extraction:
            return raw
        outcome, facts = normalize_extraction(raw)
        if report is not None:
            report.outcome = outcome
            report.facts = [f["text"] for f in facts]
        if outcome != "extracted":
            log.warning("the model gave no usable facts (%s, %d characters)", outcome, len(raw or ""))
            log.debug("unusable model output: %.500r", raw)
        return json.dumps({"memory": facts})


class ServiceOllamaEmbedding(OllamaEmbedding):
    """mem0's Ollama embedder that never pulls, keeps to the budget, and checks every vector."""

    def __init__(self, settings: Settings, client: ServiceOllamaClient, caller: OllamaCaller) -> None:
        config = BaseEmbedderConfig(
            model=settings.ollama_embed_model,
            ollama_base_url=settings.ollama_base_url,
            embedding_dims=settings.embedding_dims,
        )
        super().__init__(config)
        self.client = client
        self.caller = caller
        self.dims: int | None = None  # set from the probe in build_ollama_embedder

    def _ensure_model_exists(self) -> None:
        """mem0 pulls a missing model here, implicitly, from a request path. The service never pulls:
        build_ollama_embedder checked /api/tags before and refused to start without the model."""

    def _check(self, vectors: Sequence[Sequence[float]]) -> list[list[float]]:
        for vector in vectors:
            if self.dims is not None and len(vector) != self.dims:
                raise ServiceUnavailable(
                    DEPENDENCY,
                    f"Ollama's model '{self.config.model}' now returns {len(vector)}-dimensional vectors, not "
                    f"{self.dims}: the model was replaced; restore it or re-embed into a new collection",
                )
        return [list(v) for v in vectors]

    def _lost(self, texts: Sequence[str]) -> None:
        report = _current_report()
        if report is not None:
            report.unembedded.update(t for t in texts if t in report.facts)

    def embed(self, text: str, memory_action: Action = None) -> list[float]:
        parent = super().embed
        try:
            return self._check([self.caller("embed", lambda: parent(text, memory_action))])[0]
        except ServiceUnavailable:
            self._lost([text])
            raise

    def embed_batch(self, texts: list[str], memory_action: Action = "add") -> list[list[float]]:
        if not texts:
            return []
        parent: Callable[[list[str], Action], Sequence[Sequence[float]]] = super().embed_batch
        return self._check(self.caller("embed", lambda: parent(texts, memory_action)))


# -- start-up ---------------------------------------------------------------------------------


def _normalized(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _available_models(client: ServiceOllamaClient, settings: Settings) -> set[str]:
    """Names of the models Ollama has; waits up to OLLAMA_TIMEOUT for it to come up."""
    deadline = time.monotonic() + settings.ollama_timeout
    while True:
        try:
            listed = client.list()
            return {_normalized(m.model) for m in listed.models if m.model}
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + 1.0 > deadline:
                raise StartupError(
                    f"Ollama at {settings.ollama_base_url} (OLLAMA_BASE_URL) is not usable: "
                    f"{describe(exc, settings.ollama_timeout)}. Start Ollama (`ollama serve`) or fix OLLAMA_BASE_URL; "
                    f"unset OLLAMA_BASE_URL (and EMBEDDER) to run without it."
                ) from exc
            time.sleep(1.0)


def require_model(client: ServiceOllamaClient, settings: Settings, model: str, variable: str) -> None:
    if _normalized(model) in _available_models(client, settings):
        return
    made = f" (or, for a model made from a Modelfile: `ollama create {model} -f Modelfile`)"
    raise StartupError(
        f"the Ollama model '{model}' ({variable}) is not available at {settings.ollama_base_url}. The service "
        f"never pulls models; pull it first: `ollama pull {model}`{made if variable == 'OLLAMA_LLM_MODEL' else ''}, "
        f"then start the service again (see docs/inference.md)."
    )


def build_ollama_embedder(settings: Settings) -> TimedEmbedder:
    """The Ollama embedder, checked: the model exists and its real dimension matches EMBEDDING_DIMS."""
    client = make_client(settings)
    require_model(client, settings, settings.ollama_embed_model, "OLLAMA_EMBED_MODEL")
    inner = ServiceOllamaEmbedding(settings, client, OllamaCaller(settings.ollama_timeout, settings.ollama_retries))
    try:
        dims = len(inner.embed("dimension probe", "search"))
    except ServiceUnavailable as exc:
        raise StartupError(f"Ollama could not embed with '{settings.ollama_embed_model}': {exc.message}") from exc
    if settings.embedding_dims is not None and settings.embedding_dims != dims:
        raise StartupError(
            f"EMBEDDING_DIMS={settings.embedding_dims}, but the Ollama model '{settings.ollama_embed_model}' "
            f"(OLLAMA_EMBED_MODEL) produces {dims}-dimensional vectors. Set EMBEDDING_DIMS={dims} (or unset it); "
            f"a collection made with another model needs a new COLLECTION_NAME (and its memories re-added)."
        )
    inner.dims = dims
    inner.config.embedding_dims = dims
    log.info("ollama embedder %s: %d dimensions", settings.ollama_embed_model, dims)
    return TimedEmbedder(inner, f"ollama:{settings.ollama_embed_model}", dims)


def llm_config(settings: Settings) -> dict[str, object]:
    """mem0's configuration of its Ollama LLM (the factory then swaps in build_ollama_llm's)."""
    return {
        "provider": "ollama",
        "config": {"model": settings.ollama_llm_model, "ollama_base_url": settings.ollama_base_url},
    }


def _trained_context(client: ServiceOllamaClient, model: str) -> int | None:
    try:
        info = client.show(model).modelinfo or {}
    except Exception as exc:  # only for a warning; a real problem shows up in require_model
        log.debug("ollama show %s failed: %s", model, exc)
        return None
    values = [v for k, v in info.items() if k.endswith(".context_length") and isinstance(v, int)]
    return values[0] if values else None


def build_ollama_llm(settings: Settings) -> ServiceOllamaLLM:
    """mem0's Ollama LLM on the service's client, after checking the model and the context length."""
    client = make_client(settings)
    llm = ServiceOllamaLLM(settings, client, OllamaCaller(settings.ollama_timeout, settings.ollama_retries))
    needed = minimum_num_ctx(llm.config.max_tokens)
    if settings.ollama_num_ctx < needed:
        raise StartupError(
            f"OLLAMA_NUM_CTX={settings.ollama_num_ctx} is too small: mem0's extraction prompt and answer need about "
            f"{needed} tokens before any conversation, and Ollama silently truncates what does not fit. "
            f"Set OLLAMA_NUM_CTX to 16384 or more."
        )
    require_model(client, settings, settings.ollama_llm_model, "OLLAMA_LLM_MODEL")
    trained = _trained_context(client, settings.ollama_llm_model)
    if trained is not None and trained < settings.ollama_num_ctx:
        log.warning(
            "OLLAMA_NUM_CTX=%d is more than %s was trained for (%d tokens); answers may degrade",
            settings.ollama_num_ctx,
            settings.ollama_llm_model,
            trained,
        )
    return llm


def ollama_probe(settings: Settings) -> Callable[[], Awaitable[object]]:
    """Health probe: Ollama lists its models within PROBE_TIMEOUT."""
    client = make_client(settings, timeout=PROBE_TIMEOUT)

    async def probe() -> object:
        return await asyncio.to_thread(client.list)

    return probe
