"""`Idempotency-Key` on `POST /v1/memories`: replays answer the first response and store nothing,
another body is 409, keys belong to the tenant, concurrent replays wait for the first, expired
records are neither replayed nor kept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
from memory_service.storage.idempotency import IdempotencyStore

from tests.support.api import assert_error
from tests.support.server import ServiceProcess, embedded_conninfo, new_tenant_key


def _body(content: str, user_id: str = "idem") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "user_id": user_id}


def _post(client: httpx.Client, key: str, body: dict[str, Any], **params: str) -> httpx.Response:
    return client.post("/v1/memories", json=body, params=params, headers={"Idempotency-Key": key})


def _total(client: httpx.Client, user_id: str = "idem") -> int:
    return int(client.get(f"/v1/memories/user/{user_id}").json()["data"]["total"])


def test_a_replay_answers_the_first_response_and_stores_nothing(client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    first = _post(client, key, _body("remember me once"))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    replay = _post(client, key, _body("remember me once"))
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    assert _total(client) == 1
    without_key = client.post("/v1/memories", json=_body("remember me once"))
    assert without_key.status_code == 201
    assert _total(client) == 2


def test_the_same_key_with_another_request_is_409(client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    assert _post(client, key, _body("the first request")).status_code == 201
    error = assert_error(_post(client, key, _body("a different request")), 409, "IDEMPOTENCY_CONFLICT")
    assert error["details"] == {"idempotency_key": key}
    assert_error(_post(client, key, _body("the first request"), **{"async": "true"}), 409, "IDEMPOTENCY_CONFLICT")
    assert_error(_post(client, key, _body("the first request", "someone-else")), 409, "IDEMPOTENCY_CONFLICT")
    assert _total(client) == 1
    assert _total(client, "someone-else") == 0


def test_a_malformed_key_is_400(client: httpx.Client) -> None:
    for bad in (b"has space", b"x" * 256, "é".encode()):
        response = client.post("/v1/memories", json=_body("never stored"), headers={b"Idempotency-Key": bad})
        assert_error(response, 400, "INVALID_REQUEST")
    assert _total(client) == 0


def test_keys_belong_to_the_tenant(service: ServiceProcess, admin: httpx.Client, client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    mine = _post(client, key, _body("same key, two tenants"))
    with service.client(new_tenant_key(admin, f"t-{uuid.uuid4().hex[:10]}")) as other:
        theirs = _post(other, key, _body("same key, two tenants"))
        assert theirs.status_code == 201
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["data"]["memories"][0]["id"] != mine.json()["data"]["memories"][0]["id"]
        assert _total(other) == 1
    assert _total(client) == 1


def test_the_asynchronous_add_replays_its_job(client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    first = _post(client, key, _body("queued once"), **{"async": "true"})
    assert first.status_code == 202
    replay = _post(client, key, _body("queued once"), **{"async": "true"})
    assert replay.status_code == 202
    assert replay.json() == first.json()
    assert replay.headers["location"] == first.headers["location"] == first.json()["data"]["status_url"]
    assert replay.headers["idempotent-replayed"] == "true"


def test_concurrent_requests_with_one_key_store_once(client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: _post(client, key, _body("raced")), range(4)))
    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.json()["data"]["memories"][0]["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 3
    assert _total(client) == 1


class _EmbeddedDatabase:
    """The service's embedded Postgres, opened the way IdempotencyStore uses a Database."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            yield conn


def test_expired_records_are_not_replayed_and_are_purged(service: ServiceProcess, client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    assert _post(client, key, _body("a day old")).status_code == 201
    database = _EmbeddedDatabase(embedded_conninfo(service.data_dir))
    with database.connection() as conn:
        aged = conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = %s", (key,)
        ).rowcount
    assert aged == 1
    later = _post(client, key, _body("a day old"))
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert _total(client) == 2

    other = str(uuid.uuid4())
    assert _post(client, other, _body("expired and purged")).status_code == 201
    with database.connection() as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = %s", (other,))
    assert IdempotencyStore(database, 5.0, 5.0).purge() >= 1  # type: ignore[arg-type]
    with database.connection() as conn:
        left = conn.execute("SELECT key FROM idempotency_keys WHERE key IN (%s, %s)", (key, other)).fetchall()
    assert left == [(key,)]  # the fresh record of the second add stays
