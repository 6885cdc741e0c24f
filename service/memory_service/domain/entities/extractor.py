"""Entity extraction without a model download: what a memory mentions, with a confidence.

The default extractor is deterministic and offline (regular expressions and a few word lists):
quoted titles, technical names (FastAPI, GPT-4, pgvector), capitalised names (Alice Smith,
New York) and multi-word terms that end in a noun ("local models", "AI applications"). Each rule
has a fixed confidence reflecting how often it is right. When spaCy and `en_core_web_sm` are both
installed, mem0's spaCy extractor is used instead. mem0 would try to download the spaCy model,
with no timeout, inside a request when spaCy is present but the model is not: `guard_spacy()`
marks mem0's loader as failed first, so that never happens.

Extraction is bounded: it reads at most ENTITY_MAX_CHARS characters of a text (the first ones, cut
at a word boundary) and keeps at most MAX_ENTITIES entities, in time linear in what it reads, and
it checks the call's cancellation as it goes. A memory may hold a megabyte of text; its entities
come from its beginning, and one large add cannot hold a worker thread (and the GIL) for minutes.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from memory_service.core.context import current_call

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 20_000  # ENTITY_MAX_CHARS: about 3,000 words, a long message
MAX_ENTITIES = 100  # the most confident ones; a memory naming more is a document, not a memory
_CANCEL_CHECK_EVERY = 2048  # tokens between two looks at the call's cancellation


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    type: str
    confidence: float

    @property
    def key(self) -> str:
        return entity_key(self.name)


def entity_key(name: str) -> str:
    """The identity of an entity within a user: case and spacing do not make a new one."""
    return " ".join(name.lower().split())


class Extractor(Protocol):
    name: str

    def extract(self, text: str) -> list[Entity]: ...


_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "else",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "onto",
        "about",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "mine",
        "we",
        "us",
        "our",
        "ours",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
        "it",
        "its",
        "they",
        "them",
        "their",
        "theirs",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "can",
        "will",
        "just",
        "should",
        "would",
        "could",
        "may",
        "might",
        "must",
        "shall",
        "also",
        "really",
        "quite",
        "like",
        "love",
        "loves",
        "loved",
        "want",
        "wants",
        "need",
        "needs",
        "use",
        "uses",
        "used",
        "using",
        "prefer",
        "prefers",
        "enjoy",
        "enjoys",
        "hate",
        "hates",
        "think",
        "thinks",
        "know",
        "knows",
        "make",
        "makes",
        "made",
        "get",
        "gets",
        "got",
        "go",
        "goes",
        "went",
        "going",
        "lot",
        "lots",
        "thing",
        "things",
        "way",
        "ways",
        "today",
        "tomorrow",
        "yesterday",
        "always",
        "never",
        "often",
        "sometimes",
        "usually",
        "please",
        "thanks",
        "yes",
        "ok",
        "okay",
        "hi",
        "hello",
        "over",
        "under",
        "after",
        "before",
        "during",
        "without",
        "within",
        "between",
        "through",
        "last",
        "next",
        "year",
        "years",
        "month",
        "months",
        "week",
        "weeks",
        "day",
        "days",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
    ]
)
# Words that open sentences about the user without naming anything.
_SENTENCE_STARTERS = frozenset(
    [
        "user",
        "users",
        "note",
        "notes",
        "remember",
        "reminder",
        "today",
        "tonight",
        "tomorrow",
        "yesterday",
        "maybe",
        "sure",
        "thanks",
        "please",
        "also",
        "still",
        "yes",
        "sometimes",
        "usually",
        "always",
        "never",
        "every",
        "next",
        "last",
        "once",
    ]
)
_VERB_PREFIX = frozenset(
    [
        "build",
        "building",
        "built",
        "work",
        "working",
        "worked",
        "learn",
        "learning",
        "learned",
        "try",
        "trying",
        "tried",
        "start",
        "starting",
        "started",
        "run",
        "running",
        "ran",
        "write",
        "writing",
        "wrote",
        "play",
        "playing",
        "played",
        "read",
        "reading",
        "watch",
        "watching",
        "live",
        "living",
        "lives",
        "visit",
        "visiting",
        "visited",
        "move",
        "moving",
        "moved",
        "call",
        "calling",
        "called",
    ]
)
_NOUN_SUFFIXES = (
    "tion",
    "sion",
    "ment",
    "ness",
    "ity",
    "ism",
    "ist",
    "er",
    "or",
    "ure",
    "ance",
    "ence",
    "ship",
    "ing",
    "ology",
    "age",
    "dom",
    "model",
    "app",
    "base",
    "ware",
    "work",
    "ai",
)
_QUOTED = re.compile(r"[\"\u201c\u2018']([^\"\u201c\u201d\u2018\u2019']{2,80})[\"\u201d\u2019']")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+#.\-]*[A-Za-z0-9+#]|[A-Za-z]")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)$")
# Titles whose abbreviation point does not end a name: "Dr. Jane Doe".
_TITLES = frozenset(["mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr"])
_TECHNICAL = re.compile(r"^(?:[A-Z]{2,}[a-z]+\w*|[A-Za-z]+[A-Z]\w*|[A-Za-z]+[-.]?\d[\w.]*|[a-z]+[A-Z]{2,}\w*)$")


def _is_capitalised(word: str) -> bool:
    return word[:1].isupper()


def _same_name(gap: str, previous: str) -> bool:
    """Whether two capitalised words are one name: only spaces (or an apostrophe, or a title's
    point) lie between them. "Paris. Alice" and "Alice, Bob" are two names each."""
    return not gap.strip() or gap in ("'", "\u2019") or (gap.strip() == "." and previous.lower() in _TITLES)


def _noun_like(word: str) -> bool:
    lower = word.lower()
    if word.isupper() and len(word) >= 2:
        return True
    if lower.endswith("s") and not lower.endswith("ss") and len(lower) > 3:
        return True
    return lower.endswith(_NOUN_SUFFIXES)


def bounded_text(text: str, max_chars: int) -> str:
    """The first `max_chars` characters of `text`, cut back to a word boundary when one is near."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    if not text[max_chars].isspace():
        space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if space > max_chars // 2:
            head = head[:space]
    return head


def _check_cancelled() -> None:
    context = current_call()
    if context is not None:
        context.raise_if_cancelled()


class DeterministicExtractor:
    """Offline rules; same text, same entities, on every machine."""

    name = "deterministic"

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars

    def extract(self, text: str) -> list[Entity]:
        text = bounded_text(text, self.max_chars)
        found: dict[str, Entity] = {}

        def add(name: str, kind: str, confidence: float) -> None:
            name = name.strip(" .,;:!?-'\"")
            if len(name) < 2 or entity_key(name) in _STOP:
                return
            current = found.get(entity_key(name))
            if current is None or current.confidence < confidence:
                found[entity_key(name)] = Entity(name, kind, confidence)

        for match in _QUOTED.finditer(text):
            add(match.group(1), "title", 0.9)

        tokens = list(_TOKEN.finditer(text))
        run: list[str] = []
        run_start_sentence = False

        def flush_proper() -> None:
            if not run:
                return
            words = run[:]
            if len(words) == 1:
                word = words[0]
                if _TECHNICAL.match(word):
                    add(word, "technology", 0.85)
                elif not run_start_sentence:
                    add(word, "name", 0.7)
                elif word.lower() not in _SENTENCE_STARTERS and len(word) >= 3:
                    add(word, "name", 0.5)  # capitalised only because it starts the sentence?
            else:
                add(" ".join(words), "name", 0.8)
            run.clear()

        previous_end = 0
        for index, match in enumerate(tokens):
            if index % _CANCEL_CHECK_EVERY == 0:
                _check_cancelled()
            word = match.group(0)
            if run and not _same_name(text[previous_end : match.start()], run[-1]):
                flush_proper()
            # A sentence can only end in the text since the previous word (words end in a letter or
            # digit): searching from there keeps this linear; over the whole prefix it was quadratic.
            at_start = bool(_SENTENCE_START.search(text, previous_end, match.start()))
            previous_end = match.end()
            if _is_capitalised(word) and word.lower() not in _STOP:
                if not run:
                    run_start_sentence = at_start
                run.append(word)
            elif _TECHNICAL.match(word):
                flush_proper()
                add(word, "technology", 0.85)
            else:
                flush_proper()
        flush_proper()

        for phrase in self._terms(tokens):
            add(phrase, "term", 0.6)
        # A name inside a quoted title is the title, not a second entity. Keys never hold a newline
        # (white space is collapsed to single spaces), so one search in the titles joined by newlines
        # is the same as a search in each title, at C speed.
        titles = "\n".join(e.key for e in found.values() if e.type == "title")
        kept = [e for e in found.values() if e.type == "title" or e.key not in titles]
        return sorted(kept, key=lambda e: (-e.confidence, e.key))[:MAX_ENTITIES]

    @staticmethod
    def _terms(tokens: list[re.Match[str]]) -> Iterable[str]:
        """Runs of 2-3 content words ending in a noun-like word: 'local models', 'AI applications'."""
        chunk: list[str] = []

        def emit() -> Iterable[str]:
            first = 0  # skip leading verbs, then keep the last three words (no pop(0): linear)
            while first < len(chunk) and (chunk[first].lower() in _VERB_PREFIX or chunk[first].lower().endswith("ed")):
                first += 1
            words = chunk[max(first, len(chunk) - 3) :]
            # Names are the proper-noun rule's business: a term is lower-case words (and acronyms).
            plain = all(not _is_capitalised(w) or (w.isupper() and len(w) >= 2) for w in words)
            if len(words) >= 2 and plain and _noun_like(words[-1]):
                yield " ".join(words)

        for match in tokens:
            word = match.group(0)
            if word.lower() in _STOP or len(word) < 2:
                yield from emit()
                chunk.clear()
            else:
                chunk.append(word)
        yield from emit()


class SpacyExtractor:
    """mem0's spaCy-based extractor, used when en_core_web_sm is installed."""

    name = "spacy"
    _confidence = {"PERSON": 0.9, "ORG": 0.9, "GPE": 0.9, "LOC": 0.85, "PRODUCT": 0.85, "WORK_OF_ART": 0.85}

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars

    def extract(self, text: str) -> list[Entity]:
        from mem0.utils.entity_extraction import extract_entities

        _check_cancelled()
        entities: dict[str, Entity] = {}
        for kind, name in extract_entities(bounded_text(text, self.max_chars)):
            entity = Entity(name, kind.lower(), self._confidence.get(kind.upper(), 0.7))
            if entity.key and entity.key not in entities:
                entities[entity.key] = entity
        return list(entities.values())[:MAX_ENTITIES]


def spacy_model_installed() -> bool:
    return importlib.util.find_spec("spacy") is not None and importlib.util.find_spec("en_core_web_sm") is not None


def guard_spacy() -> None:
    """Without en_core_web_sm, mark mem0's spaCy loader as failed before any request can use it.

    With spaCy installed, mem0 would otherwise download the model (no timeout) inside a request;
    without spaCy it would log a warning on first use.
    """
    if spacy_model_installed():
        return
    import mem0.utils.spacy_models as spacy_models

    spacy_models._load_failed_full = True
    spacy_models._load_failed_lemma = True
    if importlib.util.find_spec("spacy") is not None:
        log.info("spaCy is installed without en_core_web_sm: mem0's spaCy features stay off (no download)")


def make_extractor(max_chars: int = DEFAULT_MAX_CHARS) -> Extractor:
    guard_spacy()
    if spacy_model_installed():
        return SpacyExtractor(max_chars)
    return DeterministicExtractor(max_chars)


def merge_entities(extracted: list[Entity], given: Iterable[str]) -> list[Entity]:
    """Entities the client named itself count with full confidence."""
    merged = {e.key: e for e in extracted}
    for name in given:
        name = str(name).strip()
        if name:
            merged[entity_key(name)] = Entity(name, "given", 1.0)
    return sorted(merged.values(), key=lambda e: (-e.confidence, e.key))


def payload_fields(entities: list[Entity]) -> dict[str, object]:
    """What a memory's payload stores about its entities: names, lookup keys, relationships."""
    return {
        "entities": [e.name for e in entities],
        "entity_keys": [e.key for e in entities],
        "relationships": [
            {"type": "mentions", "entity": e.name, "confidence": round(e.confidence, 3)} for e in entities
        ],
    }
