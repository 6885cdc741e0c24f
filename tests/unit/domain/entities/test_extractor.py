"""The offline entity extractor: which rule finds what, with which confidence, and how the
payload records it. Expected entities are read off the rules in extractor.py."""

from __future__ import annotations

import pytest
from memory_service.domain.entities.extractor import (
    DeterministicExtractor,
    Entity,
    entity_key,
    merge_entities,
    payload_fields,
)

extract = DeterministicExtractor().extract


def found(text: str) -> list[tuple[str, str, float]]:
    return [(e.name, e.type, e.confidence) for e in extract(text)]


def test_entity_keys_ignore_case_and_spacing() -> None:
    assert entity_key("  New   York ") == "new york"
    assert entity_key("FastAPI") == "fastapi"
    assert Entity("Local  Models", "term", 0.6).key == "local models"


def test_technical_names_and_terms_of_the_contract_example() -> None:
    assert found("User loves working with FastAPI and GPT-4 on local models.") == [
        ("FastAPI", "technology", 0.85),
        ("GPT-4", "technology", 0.85),
        ("local models", "term", 0.6),
    ]


def test_multi_word_names() -> None:
    assert found("Alice Smith moved to New York last year.") == [
        ("Alice Smith", "name", 0.8),
        ("New York", "name", 0.8),
    ]


def test_a_quoted_title_is_one_entity_and_swallows_the_names_inside_it() -> None:
    assert found('My favourite book is "The Pragmatic Programmer".') == [("The Pragmatic Programmer", "title", 0.9)]
    assert found("We visited \u201cLe Petit Prince\u201d in Paris.") == [
        ("Le Petit Prince", "title", 0.9),
        ("Paris", "name", 0.7),
    ]


@pytest.mark.parametrize("word", ["iPhone", "macOS", "k8s", "python3", "Neo4j", "OpenAI"])
def test_technical_spellings(word: str) -> None:
    assert found(f"it runs on {word} here") == [(word, "technology", 0.85)]


def test_a_capitalised_word_that_only_starts_the_sentence_gets_a_low_confidence() -> None:
    assert found("Paris") == [("Paris", "name", 0.5)]
    assert found("I love Paris") == [("Paris", "name", 0.7)]


def test_sentence_starters_and_stop_words_are_not_entities() -> None:
    assert found("Remember to call") == []
    assert found("the cat sat") == []
    assert found("Today I went there.") == []


def test_terms_drop_a_leading_verb_and_keep_at_most_three_words() -> None:
    assert ("machine learning applications", "term", 0.6) in found("building machine learning applications")
    assert ("big data pipelines", "term", 0.6) in found("very fast scalable big data pipelines")


def test_the_same_entity_twice_is_one_entity_with_its_best_confidence() -> None:
    assert found("FastAPI is great; fastapi is fast and I use FastAPI daily.") == [("FastAPI", "technology", 0.85)]


def test_results_are_ordered_by_confidence_then_key() -> None:
    entities = extract('"Deep Work" by Cal Newport mentions Slack and deep focus sessions')
    assert [e.confidence for e in entities] == sorted((e.confidence for e in entities), reverse=True)
    assert entities[0] == Entity("Deep Work", "title", 0.9)


def test_the_same_text_gives_the_same_entities() -> None:
    text = "Bob uses Kubernetes and PostgreSQL at Acme Corp for data pipelines."
    assert extract(text) == extract(text)


def test_names_given_by_the_client_count_with_full_confidence_and_replace_an_extracted_one() -> None:
    merged = merge_entities(extract("Alice Smith moved to New York."), ["new  york", " ", "Acme"])
    assert merged == [
        Entity("Acme", "given", 1.0),
        Entity("new  york", "given", 1.0),
        Entity("Alice Smith", "name", 0.8),
    ]


def test_payload_fields_record_names_keys_and_mentions() -> None:
    fields = payload_fields([Entity("FastAPI", "technology", 0.85), Entity("Local  Models", "term", 0.6666)])
    assert fields == {
        "entities": ["FastAPI", "Local  Models"],
        "entity_keys": ["fastapi", "local models"],
        "relationships": [
            {"type": "mentions", "entity": "FastAPI", "confidence": 0.85},
            {"type": "mentions", "entity": "Local  Models", "confidence": 0.667},
        ],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I moved to Paris. Alice came too.", [("Paris", "name", 0.7), ("Alice", "name", 0.5)]),
        (
            "I use PostgreSQL, Redis and Neo4j.",
            [("Neo4j", "technology", 0.85), ("PostgreSQL", "technology", 0.85), ("Redis", "name", 0.7)],
        ),
        ("We flew to Berlin, Germany last week.", [("Berlin", "name", 0.7), ("Germany", "name", 0.7)]),
        ("I asked Alice; Bob knew.", [("Alice", "name", 0.7), ("Bob", "name", 0.7)]),
    ],
)
def test_a_name_does_not_run_across_punctuation(text: str, expected: list[tuple[str, str, float]]) -> None:
    assert found(text) == expected


def test_a_name_runs_across_a_title_abbreviation_and_an_apostrophe() -> None:
    assert found("I met Dr. Jane Doe today") == [("Dr Jane Doe", "name", 0.8)]
    assert found("I met Conan O'Brien today") == [("Conan O Brien", "name", 0.8)]
