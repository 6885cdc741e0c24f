"""Does the entity boost (`graph_boost=true`) find the right memory more often? JSON on stdout.

A small labelled set: eight people with one fact each on five topics (job, food, sport, pet,
travel), plus topic-heavy memories that name nobody. Each query names one person and asks about
one topic in other words than the fact; exactly one memory is relevant. Reported per boost
weight: hit@1 and MRR@5 over all queries, and the same with the boost off, on the real service
(embedded profile).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import ServiceProcess  # noqa: E402

PEOPLE = ["Alice", "Bruno", "Chloe", "Dmitri", "Esther", "Farid", "Greta", "Hiroshi"]
VALUES = {
    "work": [
        "a nurse at the city hospital",
        "a teacher at the primary school",
        "an engineer at Acme Corp",
        "a chef at a small bistro",
        "a pilot for a regional airline",
        "a lawyer in a big firm",
        "a carpenter in her own workshop",
        "a data analyst at a bank",
    ],
    "food": [
        "spicy ramen",
        "mushroom risotto",
        "fish tacos",
        "lamb curry",
        "vegan burgers",
        "sushi",
        "cheese fondue",
        "pho with extra basil",
    ],
    "sport": ["tennis", "squash", "rock climbing", "swimming", "road cycling", "chess", "judo", "rowing"],
    "pet": [
        "a grey cat",
        "a golden retriever",
        "two rabbits",
        "a parrot",
        "a tortoise",
        "a black cat",
        "a beagle",
        "three goldfish",
    ],
    "travel": ["Portugal", "Japan", "Iceland", "Peru", "Morocco", "Norway", "Vietnam", "Canada"],
}
TEMPLATES = {
    "work": ("{p} works as {v}", "What is {p}'s job?"),
    "food": ("{p}'s favourite dish is {v}", "What does {p} like to eat?"),
    "sport": ("On weekends {p} does {v}", "Which sport does {p} practise?"),
    "pet": ("{p} lives with {v}", "What pet does {p} have?"),
    "travel": ("Next spring {p} flies to {v}", "Where is {p} going on holiday?"),
}
# Topic-heavy memories that name nobody: they compete on meaning with every query of their topic.
DISTRACTORS = [
    "Hospital jobs and school jobs are both hard work",
    "Every job has its good days and bad days",
    "Ramen, risotto and tacos are all great dishes to eat",
    "Eating out is nicer than cooking at home",
    "Tennis and squash are both racket sports people practise",
    "Sport on weekends keeps everyone fit",
    "Cats, dogs and rabbits are the most common pets",
    "Having a pet at home is a lot of work",
    "Holidays in Japan or Iceland are on many wish lists",
    "Spring is the best season to go on holiday",
]
WEIGHTS = [0.05, 0.1, 0.15, 0.25, 0.5]


def evaluate(client: httpx.Client, expected: dict[tuple[str, str], str], boost: bool, weight: float | None) -> dict:
    hits, reciprocal = 0, 0.0
    for (person, topic), memory_id in expected.items():
        params: dict[str, object] = {"query": TEMPLATES[topic][1].format(p=person), "user_id": "family", "limit": 5}
        if boost:
            params["graph_boost"] = "true"
        ranked = [m["id"] for m in client.get("/v1/memories/search", params=params).json()["data"]["memories"]]
        if ranked and ranked[0] == memory_id:
            hits += 1
        if memory_id in ranked:
            reciprocal += 1 / (ranked.index(memory_id) + 1)
    n = len(expected)
    return {"boost": boost, "weight": weight, "hit_at_1": round(hits / n, 3), "mrr_at_5": round(reciprocal / n, 3)}


def main() -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="boost-") as tmp:
        for weight in WEIGHTS:
            service = ServiceProcess(
                Path(tmp) / f"w{weight}",
                {"GRAPH_BOOST_WEIGHT": str(weight), "RATE_LIMIT_BURST": "100000", "RATE_LIMIT_PER_MINUTE": "100000"},
            ).start()
            try:
                with service.client() as client:
                    expected = {}
                    for i, person in enumerate(PEOPLE):
                        for topic, (fact, _) in TEMPLATES.items():
                            text = fact.format(p=person, v=VALUES[topic][i])
                            body = {"messages": [{"role": "user", "content": text}], "user_id": "family"}
                            response = client.post("/v1/memories", json=body)
                            expected[(person, topic)] = response.json()["data"]["memories"][0]["id"]
                    for text in DISTRACTORS:
                        body = {"messages": [{"role": "user", "content": text}], "user_id": "family"}
                        client.post("/v1/memories", json=body)
                    if weight == WEIGHTS[0]:
                        results.append(evaluate(client, expected, boost=False, weight=None))
                    results.append(evaluate(client, expected, boost=True, weight=weight))
            finally:
                service.stop()
    baseline = results[0]
    best = max(results[1:], key=lambda r: (r["mrr_at_5"], r["hit_at_1"]))
    print(
        json.dumps(
            {
                "queries": len(PEOPLE) * len(TEMPLATES),
                "memories": len(PEOPLE) * len(TEMPLATES) + len(DISTRACTORS),
                "results": results,
                "best_weight": best["weight"],
                "mrr_gain_at_best": round(best["mrr_at_5"] - baseline["mrr_at_5"], 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
