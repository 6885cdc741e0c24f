"""Entity extraction time against input length (issue 19: it was quadratic). JSON on stdout.

Extracts from texts of 10k, 20k and 40k words with the size cap off (so the whole text is read)
and on (ENTITY_MAX_CHARS, the service's default), median of three runs each. Linear time shows as
`seconds_per_10k_words` staying flat as the text doubles; the capped times stay flat altogether.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "service"))

from memory_service.domain.entities.extractor import DEFAULT_MAX_CHARS, DeterministicExtractor  # noqa: E402

SENTENCE = (
    "the quick Brown fox jumps over lazy dogs while Alice Smith builds FastAPI applications with local "
    'models in New York. Then "Deep Work" and GPT-4 met pgvector at the data warehouse.'
)
WORDS = SENTENCE.split(" ")


def text(words: int, seed: int = 19) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def timed(extractor: DeterministicExtractor, sample: str) -> float:
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        extractor.extract(sample)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    uncapped = DeterministicExtractor(max_chars=10**9)
    capped = DeterministicExtractor(max_chars=DEFAULT_MAX_CHARS)
    results = []
    for words in (10_000, 20_000, 40_000):
        sample = text(words)
        seconds = timed(uncapped, sample)
        results.append(
            {
                "words": words,
                "characters": len(sample),
                "seconds_uncapped": round(seconds, 4),
                "seconds_per_10k_words": round(seconds / (words / 10_000), 4),
                "seconds_capped": round(timed(capped, sample), 4),
            }
        )
    print(json.dumps({"benchmark": "entity_extraction", "entity_max_chars": DEFAULT_MAX_CHARS, "results": results}))


if __name__ == "__main__":
    main()
