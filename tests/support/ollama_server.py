"""An HTTP server that speaks Ollama's API as the ollama client (0.6.3) and mem0 use it.

No model weights can be downloaded in CI, so the inference tests run against this server. It is a
real HTTP/1.1 server on a loopback port (keep-alive included, so the service's connection pool is
exercised), answering deterministically:

- `GET /api/tags`, `POST /api/show`, `POST /api/pull` (recorded; "pulls" by adding the model),
  `GET /api/version`, `GET /`.
- `POST /api/embed`: hashed bag-of-words vectors (768 dimensions by default, L2-normalised), so
  texts sharing words are close and search behaves like search.
- `POST /api/chat` with `format: json`: mem0's extraction. Each sentence of each user message in
  mem0's "## New Messages" section becomes one fact in the third person ("I love X" -> "User
  loves X"), as `{"memory": [{"id", "text", "attributed_to"}]}`.

Faults, switched at run time: `chat_mode` (invalid JSON, an empty answer, no facts, other JSON
shapes), `delays` per path (slow answers), `errors` per path (a queue of HTTP statuses for the next
requests, 0 meaning "answer normally"; or `fail_always`), `hidden` models (missing from tags, 404
on use), and `stop()` / `start()` on the same port (Ollama down, then back).

Proxy mode (`upstream=`): with a real Ollama behind it, every request the faults leave alone is
forwarded there, so the same suite runs against real models with fault injection on top
(OLLAMA_TEST_URL, see docs/inference.md).

Run it standalone: `python -m tests.support.ollama_server --port 11434`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.support.server import free_port

DIMS = 768
LLM_MODEL = "qwen2.5:3b-instruct"
EMBED_MODEL = "nomic-embed-text"
CHAT_MODES = ("facts", "strings", "fenced", "invalid_json", "empty", "no_facts", "unexpected_json")
_STOPWORDS = frozenset(
    {"a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "is", "are", "was", "were"}
    | {"be", "i", "my", "me", "we", "our", "it", "this", "that"}
)
_WORD = re.compile(r"[a-z0-9]+")


def normalized(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def embed_text(text: str, dims: int = DIMS) -> list[float]:
    """Hashed bag of words (with crude stemming): deterministic, and similar texts are close."""
    vector = [0.0] * dims
    words = [w.removesuffix("s") if len(w) > 3 else w for w in _WORD.findall(text.lower())]
    for word in words:
        if word in _STOPWORDS:
            continue
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "big") % dims
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


_FIRST_PERSON = [
    (re.compile(r"^I am\b", re.I), "User is"),
    (re.compile(r"^I'm\b", re.I), "User is"),
    (re.compile(r"^I have\b", re.I), "User has"),
    (re.compile(r"^I've\b", re.I), "User has"),
    (re.compile(r"^My\b", re.I), "User's"),
]


def fact_of(sentence: str) -> str:
    """'I love hiking' -> 'User loves hiking'; 'My sister is Ana' -> "User's sister is Ana"."""
    for pattern, replacement in _FIRST_PERSON:
        if pattern.match(sentence):
            return pattern.sub(replacement, sentence, count=1)
    match = re.match(r"^I (\w+)\b(.*)$", sentence)
    if match:
        verb = match.group(1)
        if not verb.endswith("ed"):  # past tense stays
            verb = verb + "es" if verb.endswith(("s", "sh", "ch", "x", "o")) else verb + "s"
        return f"User {verb}{match.group(2)}"
    return f"User said: {sentence}"


def new_messages(prompt: str) -> list[tuple[str, str]]:
    """(role, content) of the messages in mem0's "## New Messages" section."""
    match = re.search(r"## New Messages\n(.*?)\n\n## Observation Date", prompt, re.S)
    if not match:
        return []
    parts = re.split(r"^(user|assistant|system): ", match.group(1), flags=re.M)
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def _fact(index: int, text: str) -> dict[str, str]:
    return {"id": str(index), "text": text, "attributed_to": "user"}


def extract_facts(prompt: str) -> list[str]:
    facts: list[str] = []
    for role, content in new_messages(prompt):
        if role != "user":
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", content):
            sentence = sentence.strip().rstrip(".!?").strip()
            if sentence:
                facts.append(fact_of(sentence))
    return facts


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    at: float


@dataclass
class Faults:
    chat_mode: str = "facts"
    delays: dict[str, float] = field(default_factory=dict)
    errors: dict[str, list[int]] = field(default_factory=dict)
    fail_always: dict[str, int] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FakeOllama) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw.decode(errors="replace")

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        body = self._body()
        status, payload, content_type = self.server.owner.handle(method, self.path, body)
        try:
            self._send(status, payload, content_type)
        except OSError:  # the client gave up (a timeout) or the server is stopping
            self.close_connection = True


class FakeOllama:
    """The server, its faults and its record of requests. Thread-safe; start/stop on one port."""

    def __init__(
        self,
        *,
        upstream: str | None = None,
        port: int | None = None,
        dims: int = DIMS,
        models: tuple[str, ...] = (LLM_MODEL, EMBED_MODEL),
    ) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.port = port or free_port()
        self.dims = dims
        self.models = {normalized(m) for m in models}
        self.faults = Faults()
        self.requests: list[Recorded] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=600.0) if self.upstream else None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def is_proxy(self) -> bool:
        return self.upstream is not None

    def start(self) -> FakeOllama:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ollama is gone: the port refuses connections and open ones are closed."""
        if self._server is None:
            return
        self._stopping.set()  # wakes slow answers
        self._server.shutdown()
        self._server.server_close()
        with self._server.connections_lock:
            for conn in list(self._server.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        self._server = None

    def close(self) -> None:
        self.stop()
        if self._http is not None:
            self._http.close()

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self.requests.clear()
            self.max_in_flight.clear()

    # -- what happened -----------------------------------------------------------------------------

    def recorded(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def chats(self) -> list[dict[str, Any]]:
        return [r.body for r in self.recorded("/api/chat")]

    # -- answering ---------------------------------------------------------------------------------

    def _fault(self, path: str) -> int | None:
        with self._lock:
            queue = self.faults.errors.get(path)
            if queue:
                return queue.pop(0) or None  # 0: answer this one normally
            return self.faults.fail_always.get(path)

    def _known(self, model: str | None) -> bool:
        name = normalized(model or "")
        return name not in {normalized(m) for m in self.faults.hidden} and (self.is_proxy or name in self.models)

    def handle(self, method: str, raw_path: str, body: Any) -> tuple[int, Any, str]:
        path = raw_path.split("?", 1)[0]
        with self._lock:
            self.requests.append(Recorded(method, path, body, time.monotonic()))
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), self.in_flight[path])
            delay = self.faults.delays.get(path, 0.0)
        try:
            if delay:
                self._stopping.wait(delay)
            status = self._fault(path)
            if status is not None:
                return status, {"error": f"injected failure {status}"}, "application/json"
            return self._answer(method, path, body)
        finally:
            with self._lock:
                self.in_flight[path] -= 1

    def _proxy(self, method: str, path: str, body: Any) -> tuple[int, Any, str]:
        assert self._http is not None
        response = self._http.request(method, f"{self.upstream}{path}", json=body if body is not None else None)
        return response.status_code, response.content, response.headers.get("content-type", "application/json")

    def _missing(self, model: str | None) -> tuple[int, Any, str]:
        return 404, {"error": f'model "{model}" not found, try pulling it first'}, "application/json"

    def _answer(self, method: str, path: str, body: Any) -> tuple[int, Any, str]:
        body = body if isinstance(body, dict) else {}
        if path == "/" and method == "GET":
            return 200, b"Ollama is running", "text/plain"
        if path == "/api/version":
            return self._proxy(method, path, None) if self.is_proxy else (200, {"version": "0.9.0"}, "application/json")
        if path == "/api/tags":
            return self._tags(method, path)
        if path == "/api/pull":
            name = normalized(str(body.get("model") or body.get("name") or ""))
            if self.is_proxy:
                return 403, {"error": "pulls are refused by the test proxy"}, "application/json"
            self.models.add(name)
            return 200, {"status": "success"}, "application/json"
        model = body.get("model")
        if path in ("/api/show", "/api/embed", "/api/chat") and not self._known(model):
            return self._missing(model)
        if path == "/api/show":
            return self._proxy(method, path, body) if self.is_proxy else (200, self._show(model), "application/json")
        if path == "/api/embed":
            return self._proxy(method, path, body) if self.is_proxy else (200, self._embed(body), "application/json")
        if path == "/api/chat":
            return self._chat(method, path, body)
        return 404, b"404 page not found", "text/plain"

    def _tags(self, method: str, path: str) -> tuple[int, Any, str]:
        if self.is_proxy:
            status, payload, _ = self._proxy(method, path, None)
            models = json.loads(payload).get("models", []) if status == 200 else []
        else:
            models = [
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2025-07-30T20:15:00.000000000Z",
                    "size": 274302450,
                    "digest": hashlib.sha256(name.encode()).hexdigest(),
                    "details": {"format": "gguf", "family": "fake", "parameter_size": "1B", "quantization_level": "Q4"},
                }
                for name in sorted(self.models)
            ]
        hidden = {normalized(m) for m in self.faults.hidden}
        return 200, {"models": [m for m in models if normalized(m.get("model", "")) not in hidden]}, "application/json"

    def _show(self, model: str | None) -> dict[str, Any]:
        embedding = "embed" in (model or "")
        arch = "nomic-bert" if embedding else "qwen2"
        info: dict[str, Any] = {"general.architecture": arch, f"{arch}.context_length": 2048 if embedding else 32768}
        if embedding:
            info[f"{arch}.embedding_length"] = self.dims
        return {
            "modelfile": f"FROM {model}",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": {"format": "gguf", "family": arch},
            "model_info": info,
            "capabilities": ["embedding"] if embedding else ["completion"],
        }

    def _embed(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        return {
            "model": body.get("model"),
            "embeddings": [embed_text(t, self.dims) for t in texts],
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": sum(len(t.split()) for t in texts),
        }

    def _chat(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any, str]:
        mode = self.faults.chat_mode
        if self.is_proxy and mode == "facts":
            return self._proxy(method, path, body)
        messages = body.get("messages") or []
        prompt = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        facts = extract_facts(prompt)
        content = {
            "facts": json.dumps({"memory": [_fact(i, f) for i, f in enumerate(facts)]}),
            "strings": json.dumps({"memory": facts}),
            "fenced": "Here are the memories:\n```json\n" + json.dumps({"facts": facts}) + "\n```",
            "invalid_json": '{"memory": [{"id": "0", "text": "User loves hik',
            "empty": "",
            "no_facts": json.dumps({"memory": []}),
            "unexpected_json": json.dumps({"answer": "I cannot help with that"}),
        }[mode]
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
        answer = {
            "model": body.get("model"),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": content},
            "done": True,
            "done_reason": "stop",
            "total_duration": 5_000_000,
            "load_duration": 1_000_000,
            "prompt_eval_count": prompt_tokens,
            "eval_count": max(1, len(content) // 4),
        }
        if body.get("stream", True):
            return 200, (json.dumps(answer) + "\n").encode(), "application/x-ndjson"
        return 200, answer, "application/json"


# -- helpers for the inference tests -----------------------------------------------------------

# OLLAMA_TEST_URL (or OLLAMA_BASE_URL) = http://host:11434 runs the suite against a real Ollama,
# behind the fault proxy. The service under test never sees these: it is given the proxy's URL.
UPSTREAM = os.environ.get("OLLAMA_TEST_URL") or os.environ.get("OLLAMA_BASE_URL") or None
REAL = UPSTREAM is not None
TEST_LLM_MODEL = os.environ.get("OLLAMA_TEST_LLM_MODEL", LLM_MODEL)
TEST_EMBED_MODEL = os.environ.get("OLLAMA_TEST_EMBED_MODEL", EMBED_MODEL)
TEST_EMBED_DIMS = int(os.environ.get("OLLAMA_TEST_EMBED_DIMS", str(DIMS)))
# A real model needs seconds to minutes per extraction (CPU); the fake answers in milliseconds.
TEST_TIMEOUT = float(os.environ.get("OLLAMA_TEST_TIMEOUT", "300" if REAL else "3"))
NEEDS_FAKE = "needs the deterministic fake Ollama (OLLAMA_TEST_URL or OLLAMA_BASE_URL points at a real one)"


def start_ollama() -> FakeOllama:
    """The fake Ollama, or the fault proxy in front of OLLAMA_TEST_URL."""
    return FakeOllama(upstream=UPSTREAM, models=(TEST_LLM_MODEL, TEST_EMBED_MODEL)).start()


def service_env(ollama: FakeOllama, **extra: str) -> dict[str, str]:
    """Environment of a service that extracts and embeds with this Ollama."""
    env = {
        "OLLAMA_BASE_URL": ollama.url,
        "EMBEDDER": "ollama",
        "EMBEDDING_DIMS": str(TEST_EMBED_DIMS),
        "OLLAMA_LLM_MODEL": TEST_LLM_MODEL,
        "OLLAMA_EMBED_MODEL": TEST_EMBED_MODEL,
        "OLLAMA_TIMEOUT": f"{TEST_TIMEOUT:g}",
        "REQUEST_TIMEOUT": "10",
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_BURST": "1000000",
    }
    env.update(extra)
    return env


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """A sample of /v1/metrics (admin client); 0 when the series does not exist yet."""
    response = client.get("/v1/metrics")
    assert response.status_code == 200, response.text
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in response.text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, _, value = line.rpartition(" ")
        present = set(series[series.find("{") + 1 : series.rfind("}")].split(",")) if "{" in series else set()
        if wanted <= present:
            return float(value)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--upstream", help="a real Ollama to forward to")
    args = parser.parse_args()
    server = FakeOllama(port=args.port, upstream=args.upstream).start()
    print(f"fake Ollama on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
