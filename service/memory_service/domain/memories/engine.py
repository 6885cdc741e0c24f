"""The memory engine: mem0 behind a tenant-scoped, async, time-bounded interface.

mem0's API is synchronous and blocks on the database, the embedder and (with inference) the LLM,
so every call runs on a bounded thread pool and is awaited with a deadline: a hung backend costs
the client a 503 after the deadline, not a stuck event loop. Scoping is by the tenant-qualified
user id (models/scope.py); reads by id check the owner and answer 404 for anyone else's memory,
so ids reveal nothing across tenants.

Deadlines are kept, not merely reported (docs/architecture.md, "Deadlines and cancellation"):

- at its deadline a call is cancelled: the extractor, the embedder and every database block
  check for it, and the database connection it is blocked on is interrupted, so its thread
  stops within moments instead of running on for nobody (it is awaited for up to STOP_GRACE);
- each write operation is one transaction (the call's unit of work, storage/database.py) that
  commits through a handshake with the deadline: either the 503 wins and nothing is stored, or
  the commit wins and the answer is its outcome, however late;
- the 503 names what the call was waiting on (postgres, embedder, extractor, ollama);
- adds and searches are admitted per key (admission.py), so one key cannot hold every thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from mem0 import Memory
from mem0.exceptions import DatabaseError, EmbeddingError, LLMError, VectorStoreError
from mem0.exceptions import MemoryError as Mem0Error
from mem0.memory.main import _build_filters_and_metadata, _payload_is_expired, _validate_and_trim_search_query
from mem0.utils.entity_extraction import extract_entities
from mem0.utils.lemmatization import lemmatize_for_bm25
from mem0.utils.scoring import get_bm25_params, normalize_bm25, score_and_rank
from opentelemetry import trace

from memory_service.core.context import (
    CallCancelled,
    CallContext,
    call_context,
    current_call,
    current_dialect,
    waiting_for,
)
from memory_service.core.timefmt import now_rfc3339
from memory_service.domain.entities.extractor import Extractor, merge_entities, payload_fields
from memory_service.domain.memories.admission import KeyGate, Slot
from memory_service.domain.memories.commands import AddCommand, AddOutcome, Inference, Message
from memory_service.domain.memories.filters import parse_platform_filters, tenant_scope
from memory_service.domain.memories.metadata import validate_metadata
from memory_service.errors import InvalidRequest, MemoryNotFound, NotFound, ServiceError, ServiceUnavailable
from memory_service.models.filters import Condition, Field, Filter, Op, all_of, single_user_key
from memory_service.models.memory import HistoryEntry, MemoryPage, MemoryRecord, UserPage, UserStats
from memory_service.models.scope import Scope, split_user_key
from memory_service.models.scope import user_key as owner_key
from memory_service.observability.metrics import INFERENCE_FALLBACKS, OPERATIONS
from memory_service.providers.ollama import extraction_report, unavailable_from
from memory_service.settings import Settings
from memory_service.storage.database import Database
from memory_service.storage.exports import ExportRequest, ExportStore
from memory_service.storage.feedback import FeedbackStore
from memory_service.storage.memory_table import EntityRow, MemoryTable
from memory_service.storage.user_sizes import UserSizes
from memory_service.storage.vector_store import WHERE_KEY, ServicePGVector

log = logging.getLogger(__name__)
T = TypeVar("T")
_tracer = trace.get_tracer(__name__)
STOP_GRACE = 2.0  # how long a cancelled call's thread is awaited before the 503 goes out anyway


class _Unembedded(Exception):
    """Ollama failed to embed some extracted facts: the whole add is rolled back (503)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


DEFAULTED_KEYS = ("source", "timestamp")  # metadata the service fills in when the client gives none
ENTITY_FIELDS = {"agent": Field.AGENT_ID, "app": Field.APP_ID, "run": Field.RUN_ID}
TEXT_UPDATES_PER_CALL = 50  # a batch's text updates (each embeds) per bounded engine call
EXPORT_LIMIT = 10_000


class ExportNotFound(NotFound):
    def __init__(self, what: str) -> None:
        super().__init__(f"No memory export {what}", {})


@dataclass(frozen=True, slots=True)
class MemoryChange:
    """One item of a batch update: new text and/or metadata (keys given replace theirs)."""

    memory_id: str
    text: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class Export:
    request: ExportRequest
    memories: list[MemoryRecord]
    total: int


def parse_memory_id(memory_id: str) -> str:
    """mem0 ids are UUIDs; anything else is simply not found (mem0 would raise a psycopg error)."""
    try:
        return str(uuid.UUID(memory_id))
    except (ValueError, AttributeError, TypeError):
        raise MemoryNotFound(memory_id) from None


class MemoryEngine:
    """Tenant-scoped memory operations over mem0 and the memory table."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        memory: Memory,
        table: MemoryTable,
        extractor: Extractor,
        *,
        after_write: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.memory = memory
        self.table = table
        self.extractor = extractor
        self.feedback_store = FeedbackStore(db)
        self.exports = ExportStore(db)
        # Called on the event loop after every committed write (wakes the graph projector).
        self.after_write: Callable[[], None] = after_write or (lambda: None)
        self.inference = settings.inference_enabled
        if not isinstance(memory.vector_store, ServicePGVector):
            raise TypeError("the engine needs the service's vector store (services/factory.py sets it)")
        self.store: ServicePGVector = memory.vector_store
        self.user_sizes = UserSizes(db, settings.collection_name, settings.search_exact_max_rows)
        self.embedder_dependency = "ollama" if settings.embedder == "ollama" else "embedder"
        self.threads = settings.engine_threads
        self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="mem0")
        self.gate = KeyGate(settings.key_concurrency_limit, settings.key_concurrency_wait)
        self._counts_lock = threading.Lock()
        self._submitted = 0  # calls handed to the pool and not finished
        self._running = 0  # of those, calls a thread is running
        self._stragglers = 0  # cancelled calls whose thread had not stopped within STOP_GRACE
        # Each database call is bounded by DB_TIMEOUT (pool wait, statement timeout); a whole
        # operation (many calls, embeddings) by REQUEST_TIMEOUT, plus the Ollama budget when it
        # waits for Ollama: each Ollama call, retries included, ends within OLLAMA_TIMEOUT
        # (providers/ollama.py) and an inferred add makes three (query embedding, extraction,
        # fact embeddings). A hung backend thus costs a 503 after REQUEST_TIMEOUT at most, and a
        # hung Ollama one after OLLAMA_TIMEOUT (the call's own budget ends first).
        llm_budget = settings.ollama_timeout * 3
        self._timeouts = {"postgres": settings.request_timeout, "ollama": settings.request_timeout + llm_budget}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- plumbing ------------------------------------------------------------------------------

    def saturation(self) -> dict[str, int]:
        """What /health reports: threads busy, calls queued for a thread, stragglers, admission."""
        with self._counts_lock:
            running, submitted, stragglers = self._running, self._submitted, self._stragglers
        return {
            "threads": self.threads,
            "threads_busy": running,
            "queued": max(0, submitted - running),
            "stragglers": stragglers,
            **self.gate.snapshot(),
        }

    async def _run(
        self,
        fn: Callable[..., T],
        *args: Any,
        user_key: str | None = None,
        dependency: str = "postgres",
        write: bool = False,
        slot: Slot | None = None,
    ) -> T:
        """Run a blocking call off the event loop with a deadline, in a call context (core/context.py)
        that carries the owner, the deadline and the cancellation into mem0's callbacks.

        A write runs in one unit of work that commits through the call's handshake. At the
        deadline the call is cancelled; if that wins, its thread is interrupted and awaited for up
        to STOP_GRACE, and the 503 names what it was waiting on. If the commit won, its outcome is
        awaited (up to COMMIT_TIMEOUT, then the connection is cut and the outcome looked up).
        """
        timeout = self._timeouts.get(dependency, self.settings.request_timeout)
        call = CallContext(user_key=user_key, deadline=time.monotonic() + timeout)

        def scoped() -> T:
            with self._counts_lock:
                self._running += 1
            try:
                with call_context(call):
                    if not write:
                        return fn(*args)
                    unit = self.db.unit_of_work(call)
                    try:
                        result = fn(*args)
                    except BaseException:
                        unit.rollback()
                        raise
                    unit.commit()
                    return result
            finally:
                with self._counts_lock:
                    self._running -= 1

        context = contextvars.copy_context()  # traces and log fields follow the call into the thread
        future = asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(context.run, scoped))
        with self._counts_lock:
            self._submitted += 1
        future.add_done_callback(self._finished)
        if slot is not None:
            slot.hold(future)
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
            if not done:
                component = call.waiting_on or dependency  # what it waits on now, before it unwinds
                if call.cancel():
                    await self._await_stop(future)
                    raise ServiceUnavailable(component, f"{component} did not answer within {timeout:g}s")
                # The commit won the race with the deadline: the client gets its outcome.
                done, _ = await asyncio.wait({future}, timeout=self.settings.commit_timeout)
                if not done:
                    call.interrupt_now()
                    await asyncio.wait({future})
        except asyncio.CancelledError:  # the request itself was cancelled: stop the call too
            call.cancel()
            raise
        return self._result(future)

    def _finished(self, future: asyncio.Future[Any]) -> None:
        with self._counts_lock:
            self._submitted -= 1
        if not future.cancelled():
            future.exception()  # retrieved: a call nobody awaits anymore must not log "never retrieved"

    async def _await_stop(self, future: asyncio.Future[Any]) -> None:
        done, _ = await asyncio.wait({future}, timeout=STOP_GRACE)
        if done:
            return
        with self._counts_lock:
            self._stragglers += 1
        log.warning("a call cancelled at its deadline is still running after %.0fs", STOP_GRACE)

        def stopped(_: asyncio.Future[Any]) -> None:
            with self._counts_lock:
                self._stragglers -= 1

        future.add_done_callback(stopped)

    def _result(self, future: asyncio.Future[T]) -> T:
        try:
            return future.result()
        except CallCancelled:  # only after a cancel we made; the caller was answered already
            raise ServiceUnavailable("postgres") from None
        except _Unembedded as exc:
            raise ServiceUnavailable(
                "ollama", f"Ollama failed to embed {exc.count} extracted fact(s); nothing was stored, retry later"
            ) from None
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable("postgres") from exc
        except LLMError as exc:  # mem0 wraps every LLM failure; ours carry the reason (providers/ollama.py)
            raise unavailable_from(exc) from exc
        except EmbeddingError as exc:
            raise ServiceUnavailable(self.embedder_dependency) from exc
        except (VectorStoreError, DatabaseError) as exc:
            raise ServiceUnavailable("postgres") from exc
        except Mem0Error as exc:
            raise InvalidRequest(exc.message, {"mem0_code": exc.error_code}) from exc
        except ValueError as exc:  # mem0 validates its arguments with ValueError
            raise InvalidRequest(str(exc)) from exc

    @asynccontextmanager
    async def _admitted(self, caller: str | None) -> AsyncIterator[Slot | None]:
        """The caller's admission slot for one operation (none for internal callers: jobs)."""
        if caller is None:
            yield None
            return
        slot = await self.gate.acquire(caller)
        try:
            yield slot
        finally:
            slot.release()

    @asynccontextmanager
    async def _operation(self, name: str) -> AsyncIterator[None]:
        """Count the operation's outcome, by the dialect that asked for it, and trace it."""
        outcome = "success"
        dialect = current_dialect()
        with _tracer.start_as_current_span(f"memory.{name}", attributes={"memory.dialect": dialect}):
            try:
                yield
            except MemoryNotFound:
                outcome = "not_found"
                raise
            except ServiceUnavailable:
                outcome = "unavailable"
                raise
            except ServiceError as exc:
                outcome = "invalid" if exc.status_code < 500 else "error"
                raise
            except Exception:
                outcome = "error"
                raise
            finally:
                OPERATIONS.labels(name, outcome, dialect).inc()

    async def _owned(self, tenant: str, memory_id: str, *, with_vector: bool = False) -> MemoryRecord:
        memory_id = parse_memory_id(memory_id)
        records = await self._run(lambda: self.table.fetch([memory_id], with_vectors=with_vector))
        record = records.get(memory_id)
        if record is None or record.tenant != tenant:
            raise MemoryNotFound(memory_id)
        return record

    def _entity_fields(self, content: str, given: Iterable[str] = ()) -> dict[str, Any]:
        with waiting_for("extractor"):
            return payload_fields(merge_entities(self.extractor.extract(content), given))

    # -- operations ----------------------------------------------------------------------------

    async def add(self, tenant: str, command: AddCommand, *, caller: str | None = None) -> AddOutcome:
        """Store an add; `caller` (the API key) is admitted per key (admission.py)."""
        validate_metadata(command.metadata)  # again here: every surface, not only HTTP, adds
        async with self._operation("add"), self._admitted(caller) as slot:
            scope = command.scope(tenant)
            messages = list(command.messages)
            metadata = dict(command.metadata)
            infer = self.inference if command.infer is None else (command.infer and self.inference)
            given_entities = list(metadata.pop("entities", []) or [])
            # Exactly the keys filled in below: a source the client gave (even empty) is its own.
            defaulted = [k for k in DEFAULTED_KEYS if (k not in metadata if k == "source" else not metadata.get(k))]
            base = {
                **metadata,
                "source": metadata.get("source", "api"),
                "timestamp": metadata.get("timestamp") or now_rfc3339(),
                "tenant_id": scope.tenant,
            }
            if defaulted:
                base["metadata_defaults"] = defaulted
            if scope.app_id is not None:
                base["app_id"] = scope.app_id
            if infer:
                return await self._add_inferred(scope, messages, base, given_entities, slot)
            records = await self._run(
                self._store_messages,
                scope,
                messages,
                base,
                given_entities,
                user_key=scope.user_key,
                write=True,
                slot=slot,
            )
            self.after_write()
            return AddOutcome(records, "none")

    def _store_messages(
        self, scope: Scope, messages: list[Message], base: dict[str, Any], given: list[str]
    ) -> list[MemoryRecord]:
        """Each user message becomes one memory, as given. The creation time is set here (mem0
        keeps a given `created_at`), so the stored payload is known without reading it back.

        This is mem0's add(infer=False) (Memory.add, 2.2) for all messages of the request at
        once: the payload built by mem0's own helpers and steps (scope ids, role, actor, hash,
        timestamps, BM25 text), the texts embedded in one batch, and the rows, their history and
        outbox rows written in one pipelined transaction (mem0 embeds, inserts and writes history
        per message: two transactions each). tests/api/test_mem0_equivalence.py checks the
        stored payload against mem0's own add.
        """
        entries: list[tuple[Message, dict[str, Any]]] = []
        for message in messages:
            if message.role != "user":
                continue
            created_at = datetime.now(UTC).isoformat()
            entries.append((message, {**base, **self._entity_fields(message.content, given), "created_at": created_at}))
        if not entries:
            return []
        payloads = []
        for message, metadata in entries:
            payload, _ = _build_filters_and_metadata(
                user_id=scope.user_key, agent_id=scope.agent_id, run_id=scope.run_id, input_metadata=metadata
            )
            payload["role"] = message.role
            if message.name:
                payload["actor_id"] = message.name
            payload["data"] = message.content
            payload["hash"] = hashlib.md5(message.content.encode(), usedforsecurity=False).hexdigest()
            payload["updated_at"] = payload["created_at"]
            payload["text_lemmatized"] = lemmatize_for_bm25(message.content)
            payloads.append(payload)
        vectors = self.memory.embedding_model.embed_batch([m.content for m, _ in entries], "add")
        ids = [str(uuid.uuid4()) for _ in entries]
        self.store.insert_memories(ids, vectors, payloads, scope.user_key)
        return [MemoryRecord.from_payload(i, p) for i, p in zip(ids, payloads, strict=True)]

    async def _add_inferred(
        self, scope: Scope, messages: list[Message], base: dict[str, Any], given: list[str], slot: Slot | None
    ) -> AddOutcome:
        """mem0 extracts facts with the LLM; when it yields nothing usable, keep the messages as given.

        mem0 answers "no memories" alike for an unusable model answer (it logs and returns nothing)
        and for facts it already stores (hash dedup); the extraction report tells them apart, so
        only the first falls back. Facts Ollama failed to embed are not silently dropped: the
        whole add is rolled back and answered 503, so a retry stores every fact once. Extraction
        (the facts with their entities) and the fallback are one call and one transaction.
        """
        entries = [{"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {}) for m in messages]

        def extract() -> tuple[list[MemoryRecord], Inference]:
            # Each fact gets its entities in the insert itself (storage/vector_store.py), so the
            # stored memory, its graph outbox row and its memory.created event are complete at once.
            call = current_call()
            assert call is not None
            call.payload_fields = lambda payload: self._entity_fields(str(payload.get("data", "")), given)
            with extraction_report() as report:
                result = self.memory.add(
                    entries,
                    user_id=scope.user_key,
                    agent_id=scope.agent_id,
                    run_id=scope.run_id,
                    metadata=base,
                    infer=True,
                )
            call.payload_fields = None
            if report.unembedded:
                raise _Unembedded(len(report.unembedded))
            ids = [str(r["id"]) for r in result.get("results", []) if r.get("event") == "ADD"]
            outcome = report.outcome
            if not ids and outcome == "extracted":
                log.info("every extracted fact is already stored; nothing added")
            elif not ids and any(m.role == "user" for m in messages):
                INFERENCE_FALLBACKS.labels(outcome or "no_facts").inc()
                log.warning("inference produced no memories (%s); storing the user messages as given", outcome)
                return self._store_messages(scope, messages, {**base, "inference": "fallback"}, given), "fallback"
            records = self.table.fetch(ids)  # in the unit of work: it sees the facts just inserted
            return [records[i] for i in ids if i in records], "extracted"

        records, mode = await self._run(extract, user_key=scope.user_key, dependency="ollama", write=True, slot=slot)
        self.after_write()
        return AddOutcome(records, mode)

    async def search(
        self,
        scope: Scope,
        query: str,
        *,
        limit: int,
        threshold: float | None,
        filters: Filter | None,
        graph_boost: bool = False,
        include_embedding: bool = False,
        caller: str | None = None,
    ) -> list[MemoryRecord]:
        """The contract's search: one user (and agent, run) of the tenant, plus metadata filters;
        `caller` (the API key) is admitted per key (admission.py)."""
        where = all_of(
            Condition(Field.USER_KEY, Op.EQ, scope.user_key),
            Condition(Field.AGENT_ID, Op.EQ, scope.agent_id) if scope.agent_id is not None else None,
            Condition(Field.RUN_ID, Op.EQ, scope.run_id) if scope.run_id is not None else None,
            filters,
        )
        return await self._search(
            where,
            scope.user_key,
            query,
            limit=limit,
            threshold=threshold,
            graph_boost=graph_boost,
            include_embedding=include_embedding,
            caller=caller,
        )

    async def search_where(
        self,
        tenant: str,
        query: str,
        filters: Filter | None,
        *,
        limit: int,
        threshold: float | None,
        caller: str | None = None,
    ) -> list[MemoryRecord]:
        """A search over whatever memories of the tenant the filter names (any users)."""
        where = tenant_scope(tenant, filters)
        return await self._search(
            where,
            single_user_key(where) or owner_key(tenant, ""),
            query,
            limit=limit,
            threshold=threshold,
            caller=caller,
        )

    async def _search(
        self,
        where: Filter,
        primary_user: str,
        query: str,
        *,
        limit: int,
        threshold: float | None,
        graph_boost: bool = False,
        include_embedding: bool = False,
        caller: str | None = None,
    ) -> list[MemoryRecord]:
        """mem0's hybrid search with the filter tree as the whole condition (storage/vector_store.py:
        WHERE_KEY); mem0 still wants a user id beside it, and uses it for its entity boosts."""
        async with self._operation("search"), self._admitted(caller) as slot:
            mem0_filters: dict[str, Any] = {"user_id": primary_user, WHERE_KEY: where}
            fetch = min(limit * 3, self.settings.search_limit * 3) if graph_boost else limit

            def run() -> list[MemoryRecord]:
                minimum = threshold if threshold is not None else 0.0
                # One user's memories may be searched exactly (cost in proportion to the user's
                # rows); a search across users goes through the index.
                records = self._hybrid_search(single_user_key(where), query, fetch, mem0_filters, minimum)
                if records is None:
                    found = self.memory.search(query, top_k=fetch, filters=mem0_filters, threshold=minimum)
                    records = [self._record_from_result(r) for r in found.get("results", [])]
                if graph_boost:
                    records = self._boost(query, records)
                records = records[:limit]
                if include_embedding and records:
                    vectors = self.table.fetch([r.id for r in records], with_vectors=True)
                    for record in records:
                        record.embedding = vectors[record.id].embedding if record.id in vectors else None
                return records

            return await self._run(run, user_key=primary_user, slot=slot)

    def _hybrid_search(
        self, user_key: str | None, query: str, top_k: int, filters: dict[str, Any], threshold: float
    ) -> list[MemoryRecord] | None:
        """mem0's search (Memory.search, 2.2) with its two queries in one round trip and the
        rows turned into records directly; None where only mem0's own path can answer.

        The same steps with mem0's own functions: the query trimmed, its BM25 form, the embedding,
        the over-fetch of max(4 x top_k, 60) nearest and as many keyword matches, the sigmoid
        normalisation of the keyword ranks, expired memories dropped, additive scoring, the
        threshold on the semantic score, candidates without text skipped (tests/api/
        test_mem0_equivalence.py compares both paths on the same memories). Left out is what
        costs without effect here: mem0 validates and copies each candidate through pydantic,
        formats results that the engine turns back into payloads, and sends telemetry (off).
        mem0's entity boost needs spaCy, which the service does not install; should it be
        present, the query goes through mem0.
        """
        query = _validate_and_trim_search_query(query)
        if extract_entities(query):
            return None
        effective = dict(filters)
        if self.memory._has_advanced_operators(effective):  # mem0's own filter processing, as in search()
            processed = self.memory._process_metadata_filters(effective)
            for logical in ("AND", "OR", "NOT"):
                effective.pop(logical, None)
            for key in list(effective):
                if key not in ("user_id", "agent_id", "run_id") and isinstance(effective[key], dict):
                    effective.pop(key)
            effective.update(processed)
        lemmatized = lemmatize_for_bm25(query)
        vector = self.memory.embedding_model.embed(query, "search")
        exact = user_key is not None and not self.user_sizes.is_large(user_key)
        semantic, keyword = self.store.hybrid_search(vector, lemmatized, effective, max(top_k * 4, 60), exact=exact)
        midpoint, steepness = get_bm25_params(query, lemmatized=lemmatized)
        bm25 = {i: normalize_bm25(rank, midpoint, steepness) for i, rank in keyword if rank > 0}
        semantic.sort(key=lambda row: -row[1])  # nearest first, as mem0 receives them
        candidates = [{"id": i, "score": s, "payload": p} for i, s, p in semantic if not _payload_is_expired(p)]
        scored = score_and_rank(candidates, bm25, {}, threshold=threshold, top_k=top_k)
        return [
            MemoryRecord.from_payload(r["id"], r["payload"], score=r["score"])
            for r in scored
            if (r["payload"] or {}).get("data")
        ]

    def _boost(self, query: str, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Raise memories that mention an entity of the query by GRAPH_BOOST_WEIGHT.

        The same for every such memory (not scaled by the mention's confidence, which differs
        between mentions of one entity and would reorder them by extraction rule, not relevance);
        normalised so scores stay in [0, 1]. bench/graph_boost.py measured the weight.
        """
        with waiting_for("extractor"):
            query_keys = {e.key for e in self.extractor.extract(query)}
        if not query_keys:
            return records
        weight = self.settings.graph_boost_weight
        for record in records:
            mentions = {" ".join(str(rel.get("entity", "")).lower().split()) for rel in record.relationships}
            shared = 1.0 if mentions & query_keys else 0.0
            record.score = ((record.score or 0.0) + weight * shared) / (1.0 + weight)
        return sorted(records, key=lambda r: r.score or 0.0, reverse=True)

    @staticmethod
    def _record_from_result(result: dict[str, Any]) -> MemoryRecord:
        payload = {k: v for k, v in result.items() if k not in {"id", "memory", "score", "metadata", "hash"}}
        payload.update(result.get("metadata") or {})
        payload["data"] = result.get("memory", "")
        return MemoryRecord.from_payload(str(result["id"]), payload, score=result.get("score"))

    async def search_text(self, scope: Scope, query: str, *, limit: int) -> list[MemoryRecord]:
        """Full-text search of one user's memories (storage/memory_table.py), ranked; no embedding."""
        async with self._operation("search_text"):
            return await self._run(lambda: self.table.search_text(scope.user_key, query, limit))

    async def get(self, tenant: str, memory_id: str, *, include_embedding: bool = False) -> MemoryRecord:
        async with self._operation("get"):
            return await self._owned(tenant, memory_id, with_vector=include_embedding)

    async def get_many(self, tenant: str, memory_ids: list[str]) -> list[MemoryRecord]:
        """Those of the memories that exist and are the tenant's, in the order given."""
        async with self._operation("get"):
            records = await self._run(lambda: self.table.fetch(memory_ids))
            return [records[i] for i in memory_ids if i in records and records[i].tenant == tenant]

    async def update(
        self, tenant: str, memory_id: str, content: str | None, metadata: dict[str, Any] | None
    ) -> MemoryRecord:
        validate_metadata(metadata)
        async with self._operation("update"):
            current = await self._owned(tenant, memory_id)
            changes = self._metadata_changes(current, metadata, content)

            def write() -> MemoryRecord:
                self.memory.update(current.id, text=content, metadata=changes or None)
                # Read back in the same transaction: once committed, the answer is this record.
                return self.table.fetch([current.id])[current.id]

            record = await self._run(write, user_key=owner_key(tenant, current.user_id), write=True)
            self.after_write()
            return record

    def _metadata_changes(
        self, current: MemoryRecord, metadata: dict[str, Any] | None, content: str | None
    ) -> dict[str, Any]:
        """The payload changes of an update: the client's keys, the entity fields when the text or
        the given entities change, and the defaulted keys the client now sets itself."""
        changes = dict(metadata or {})
        given = changes.pop("entities", None)
        if content is not None or given is not None:
            text = content if content is not None else current.content
            changes.update(self._entity_fields(text, given or []))
        if metadata and any(key in current.defaulted for key in metadata):
            changes["metadata_defaults"] = [key for key in current.defaulted if key not in metadata]
        return changes

    async def delete(self, tenant: str, memory_id: str) -> None:
        async with self._operation("delete"):
            current = await self._owned(tenant, memory_id)
            owner = owner_key(tenant, current.user_id)
            await self._run(lambda: self.memory.delete(current.id), user_key=owner, write=True)
            self.after_write()

    async def history(self, tenant: str, memory_id: str) -> list[HistoryEntry]:
        async with self._operation("history"):
            memory_id = parse_memory_id(memory_id)
            rows = await self._run(lambda: self.memory.db.get_history(memory_id))
            owned = [r for r in rows if r.get("user_key") and split_user_key(r["user_key"])[0] == tenant]
            if not owned:
                raise MemoryNotFound(memory_id)
            return [
                HistoryEntry(
                    id=str(r["id"]),
                    memory_id=memory_id,
                    user_id=split_user_key(r["user_key"])[1],
                    event=r["event"],
                    old_content=r["old_memory"],
                    new_content=r["new_memory"],
                    created_at=r["created_at"],
                    updated_at=r["updated_at"],
                    recorded_at=None,
                )
                for r in owned
            ]

    async def list_user(self, scope: Scope, *, limit: int, cursor: str | None) -> MemoryPage:
        async with self._operation("list"):
            return await self._run(
                lambda: self.table.page(
                    scope.user_key, limit=limit, cursor=cursor, agent_id=scope.agent_id, run_id=scope.run_id
                )
            )

    async def erase_user(self, scope: Scope) -> int:
        async with self._operation("erase"):
            ids = await self._run(lambda: self.table.erase_user(scope.user_key), write=True)
            self.after_write()
            return len(ids)

    async def users(self, tenant: str, *, limit: int, after: str | None = None) -> UserPage:
        """A tenant's users with their memory counts, by user id."""
        async with self._operation("users"):
            return await self._run(lambda: self.table.users(tenant, limit=limit, after=after))

    async def stats(self, scope: Scope) -> UserStats:
        async with self._operation("stats"):
            return await self._run(lambda: self.table.stats(scope.user_key))

    async def count(self, tenant: str | None = None) -> int:
        return await self._run(lambda: self.table.count(tenant))

    # -- queries and bulk changes by filter (the mem0 Platform dialect) ---------------------------

    async def list_where(
        self, tenant: str, filters: Filter | None, *, limit: int, offset: int
    ) -> tuple[list[MemoryRecord], int]:
        """A page of the tenant's memories the filter names, newest first, and how many there are."""
        async with self._operation("list"):
            where = tenant_scope(tenant, filters)
            return await self._run(
                lambda: (self.table.select(where, limit=limit, offset=offset), self.table.count_where(where))
            )

    async def delete_where(self, tenant: str, filters: Filter) -> int:
        """Delete what the filter names in the tenant, with history; returns how many."""
        async with self._operation("delete"):
            where = tenant_scope(tenant, filters)
            ids = await self._run(lambda: self.table.delete_where(where, datetime.now(UTC).isoformat()), write=True)
            self.after_write()
            return len(ids)

    async def _all_owned(self, tenant: str, memory_ids: list[str]) -> dict[str, MemoryRecord]:
        """Every id's memory, or MemoryNotFound for the first id that is not the tenant's."""
        parsed = [parse_memory_id(i) for i in memory_ids]
        records = await self._run(lambda: self.table.fetch(list(dict.fromkeys(parsed))))
        for memory_id in parsed:
            record = records.get(memory_id)
            if record is None or record.tenant != tenant:
                raise MemoryNotFound(memory_id)
        return records

    async def delete_many(self, tenant: str, memory_ids: list[str]) -> int:
        """All of them or none: every id is checked first, then all go in one transaction."""
        async with self._operation("delete"):
            records = await self._all_owned(tenant, memory_ids)
            where = tenant_scope(tenant, Condition(Field.MEMORY_ID, Op.IN, list(records)))
            ids = await self._run(lambda: self.table.delete_where(where, datetime.now(UTC).isoformat()), write=True)
            self.after_write()
            return len(ids)

    async def update_many(self, tenant: str, changes: list[MemoryChange], *, caller: str | None = None) -> int:
        """Every id is checked first (nothing is applied if one is not the tenant's). Metadata-only
        changes are merged in one statement; text changes go through mem0 (each is embedded), in
        bounded calls per owner, so their history rows carry the right owner."""
        for change in changes:
            validate_metadata(change.metadata)
        async with self._operation("update"), self._admitted(caller) as slot:
            records = await self._all_owned(tenant, [c.memory_id for c in changes])
            merged: dict[str, dict[str, Any]] = {}
            texts: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {}
            for change in changes:
                current = records[parse_memory_id(change.memory_id)]
                payload_changes = self._metadata_changes(current, change.metadata, change.text)
                if change.text is None:
                    merged.setdefault(current.id, {}).update(payload_changes)
                else:
                    owner = owner_key(tenant, current.user_id)
                    texts.setdefault(owner, []).append((current.id, change.text, payload_changes or None))
            if merged:
                await self._run(
                    lambda: self.table.merge_payloads(merged, datetime.now(UTC).isoformat()), write=True, slot=slot
                )
            for owner, items in texts.items():
                for start in range(0, len(items), TEXT_UPDATES_PER_CALL):
                    chunk = items[start : start + TEXT_UPDATES_PER_CALL]

                    def apply(chunk: list[tuple[str, str, dict[str, Any] | None]] = chunk) -> None:
                        for memory_id, text, metadata in chunk:
                            self.memory.update(memory_id, text=text, metadata=metadata)

                    await self._run(apply, user_key=owner, write=True, slot=slot)
            self.after_write()
            return len(changes)

    async def entities(self, tenant: str, *, limit: int, offset: int) -> tuple[list[EntityRow], dict[str, int]]:
        async with self._operation("entities"):
            return await self._run(lambda: self.table.entities(tenant, limit=limit, offset=offset))

    async def delete_entity(self, tenant: str, kind: str, name: str) -> int:
        """Erase a user, agent, app or run: its memories with their history and feedback."""
        async with self._operation("erase"):
            if kind == "user":
                ids = await self._run(lambda: self.table.erase_user(owner_key(tenant, name)), write=True)
            else:
                where = tenant_scope(tenant, Condition(ENTITY_FIELDS[kind], Op.EQ, name))
                ids = await self._run(lambda: self.table.erase_where(where), write=True)
            self.after_write()
            return len(ids)

    async def feedback(self, tenant: str, memory_id: str, feedback: str | None, reason: str | None) -> str:
        """Store a feedback on one of the tenant's memories; returns the feedback's id."""
        async with self._operation("feedback"):
            current = await self._owned(tenant, memory_id)
            owner = owner_key(tenant, current.user_id)
            return await self._run(
                lambda: self.feedback_store.add(tenant, current.id, owner, feedback, reason), write=True
            )

    async def create_export(self, tenant: str, schema: Any, filters: dict[str, Any] | None) -> ExportRequest:
        """Keep an export request; its filters are checked now and evaluated when it is read."""
        async with self._operation("export"):
            parse_platform_filters(filters, tenant)
            return await self._run(lambda: self.exports.create(tenant, schema, filters), write=True)

    async def get_export(self, tenant: str, export_id: str | None, filters: dict[str, Any] | None) -> Export:
        """An export by id, or the latest one with these filters, with the memories it names now."""
        async with self._operation("export"):
            if export_id is not None:
                request = await self._run(lambda: self.exports.get(tenant, export_id))
                if request is None:
                    raise ExportNotFound(f"with ID '{export_id}'")
            else:
                request = await self._run(lambda: self.exports.latest(tenant, filters))
                if request is None:
                    raise ExportNotFound("with these filters")
            where = tenant_scope(tenant, parse_platform_filters(request.filters, tenant))
            memories, total = await self._run(
                lambda: (self.table.select(where, limit=EXPORT_LIMIT), self.table.count_where(where))
            )
            return Export(request, memories, total)

    def warm_up(self) -> None:
        """First calls create mem0's lazy state; do them once, before traffic, not racing in requests."""
        self.memory.embedding_model.embed("warm up", "search")
        self.memory.search("warm up", top_k=1, filters={"user_id": "__warmup__/none"}, threshold=0.0)
