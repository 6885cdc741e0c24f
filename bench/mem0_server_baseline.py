"""Baseline for `make bench`: a server built the way mem0's own REST server is.

mem0's server (server/main.py in the mem0 repository) is a FastAPI app whose handlers are plain
`def` functions calling one global `Memory` directly (FastAPI runs them on its thread pool), with
mem0's pgvector provider managing its own connection pool and history in a local SQLite file.
This module rebuilds that pattern (not its code) on the same embedded Postgres and the same ONNX
embedder as the service, so the benchmark compares serving designs, not models or databases.

Run: `python bench/mem0_server_baseline.py <port> <postgres-uri> <sqlite-path> <collection>`.
`make bench` runs it twice: as mem0 ships it, and with the URI's `options` setting the HNSW
iterative scan, which makes its filtered searches return as many results as the service's do.
"""

from __future__ import annotations

import os
import sys
from typing import Any

os.environ["MEM0_TELEMETRY"] = "False"

import uvicorn
from fastapi import FastAPI
from mem0 import Memory
from mem0.configs.base import MemoryConfig
from memory_service.providers.onnx import OnnxMiniLMEmbedder
from pydantic import BaseModel

TOP_K = int(os.environ.get("BASELINE_TOP_K", "5"))


class MessageIn(BaseModel):
    role: str
    content: str


class AddIn(BaseModel):
    messages: list[MessageIn]
    user_id: str | None = None
    metadata: dict[str, Any] | None = None


class SearchIn(BaseModel):
    query: str
    user_id: str | None = None


def build_app(uri: str, history_path: str, collection: str) -> FastAPI:
    config = MemoryConfig(
        vector_store={
            "provider": "pgvector",
            "config": {
                "connection_string": uri,
                "collection_name": collection,
                "embedding_model_dims": 384,
            },
        },
        llm={"provider": "ollama", "config": {"model": "none", "ollama_base_url": "http://127.0.0.1:9"}},
        embedder={"provider": "openai", "config": {"api_key": "unused", "embedding_dims": 384}},
        history_db_path=history_path,
    )
    memory = Memory(config)
    # One text per model run, as mem0's server embeds (the service's micro-batching left out).
    memory.embedding_model = OnnxMiniLMEmbedder(runners=64, max_batch=1)
    app = FastAPI()

    @app.post("/memories")
    def add(body: AddIn) -> Any:
        messages = [m.model_dump() for m in body.messages]
        return memory.add(messages=messages, user_id=body.user_id, metadata=body.metadata, infer=False)

    @app.post("/search")
    def search(body: SearchIn) -> Any:
        return memory.search(query=body.query, filters={"user_id": body.user_id}, top_k=TOP_K, threshold=0.0)

    @app.get("/memories/{memory_id}")
    def get(memory_id: str) -> Any:
        return memory.get(memory_id)

    return app


if __name__ == "__main__":
    port, uri, history, collection = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    uvicorn.run(build_app(uri, history, collection), host="127.0.0.1", port=port, log_level="warning")
