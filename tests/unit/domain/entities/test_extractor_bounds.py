"""The entity extractor's bounds (issue 19): it reads at most ENTITY_MAX_CHARS characters, keeps at
most MAX_ENTITIES entities, and stops when its call is cancelled. Its speed is measured by
`make bench-extractor`, not here."""

from __future__ import annotations

import pytest
from memory_service.core.context import CallCancelled, CallContext, call_context
from memory_service.domain.entities.extractor import MAX_ENTITIES, DeterministicExtractor, bounded_text


def test_only_the_first_max_chars_are_read_cut_at_a_word() -> None:
    extractor = DeterministicExtractor(max_chars=200)
    text = "We deployed FastAPI today. " + "filler words here " * 20 + "Then we tried Kubernetes."
    keys = {e.key for e in extractor.extract(text)}
    assert "fastapi" in keys
    assert "kubernetes" not in keys  # beyond the cap
    assert bounded_text("alpha beta gamma", 12) == "alpha beta"
    assert bounded_text("x" * 50, 10) == "x" * 10  # no word boundary near: a hard cut
    assert bounded_text("short", 10) == "short"


def test_at_most_max_entities_the_most_confident_first() -> None:
    text = " ".join(f'"Book {i}" by Author{i}' for i in range(300))
    entities = DeterministicExtractor(max_chars=1_000_000).extract(text)
    assert len(entities) == MAX_ENTITIES
    assert entities[0].confidence >= entities[-1].confidence


def test_sentence_starts_are_recognised_as_before() -> None:
    """Capitalised at a sentence start is weaker evidence of a name than mid-sentence."""
    extractor = DeterministicExtractor()
    mid = {e.key: e.confidence for e in extractor.extract("yesterday we met Alice")}
    start = {e.key: e.confidence for e in extractor.extract("It rained. Alice stayed home")}
    first = {e.key: e.confidence for e in extractor.extract("Alice stayed home")}
    assert mid["alice"] == 0.7
    assert start["alice"] == 0.5
    assert first["alice"] == 0.5


def test_a_cancelled_call_stops_the_extraction() -> None:
    extractor = DeterministicExtractor(max_chars=1_000_000)
    with call_context(CallContext()) as call:
        call.cancel()
        with pytest.raises(CallCancelled):
            extractor.extract("Alice met Bob in Paris. " * 1000)
