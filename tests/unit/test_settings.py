"""Settings validation: what start-up refuses, and what it derives, from the environment."""

from __future__ import annotations

from typing import Any

import pytest
from memory_service.settings import Settings
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes counts: no variable of the machine running the tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("API_KEY", raising=False)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def errors_of(**values: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_the_seed_defaults() -> None:
    s = settings()
    assert (s.api_host, s.api_port, s.max_memory_size, s.search_limit, s.default_user_id) == (
        "localhost",
        8080,
        1_000_000,
        50,
        "default",
    )
    assert (s.rate_limit_per_minute, s.rate_limit_burst, s.rate_limit_burst_seconds) == (100, 20, 10)
    assert s.collection_name == "memories"


@pytest.mark.parametrize("name", ["memories", "tenant_a_memories", "_private", "m" + "x" * 40])
def test_collection_names_that_are_plain_sql_identifiers(name: str) -> None:
    assert settings(collection_name=name).collection_name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Memories",
        "9memories",
        "my-memories",
        "memories;drop",
        "memories table",
        "m" + "x" * 41,
        "mémoires",
        "memories\n",  # `match` with `$` accepted the trailing newline
    ],
)
def test_collection_names_that_are_refused(name: str) -> None:
    assert errors_of(collection_name=name) == [
        ("collection_name", "Value error, must be a lower-case SQL identifier (letters, digits, underscore)")
    ]


def test_the_embedder_follows_ollama_unless_chosen() -> None:
    assert settings().embedder == "onnx"
    assert settings(ollama_base_url="http://127.0.0.1:11434").embedder == "ollama"
    assert settings(ollama_base_url="http://127.0.0.1:11434", embedder="onnx").embedder == "onnx"


def test_the_ollama_embedder_needs_ollama() -> None:
    assert errors_of(embedder="ollama") == [("", "Value error, EMBEDDER=ollama needs OLLAMA_BASE_URL")]
    assert errors_of(embedder="openai")[0][0] == "embedder"


@pytest.mark.parametrize("user_id", ["default", "alice", "user-42@example.org"])
def test_default_user_ids_that_are_valid_ids(user_id: str) -> None:
    assert settings(default_user_id=user_id).default_user_id == user_id


@pytest.mark.parametrize("user_id", ["", "has space", "a/b", "x" * 129])
def test_default_user_ids_that_are_refused(user_id: str) -> None:
    ((field, message),) = errors_of(default_user_id=user_id)
    assert field == "default_user_id"
    assert message.startswith("Value error, user_id must be 1-128 characters")


@pytest.mark.parametrize(
    ("field", "value"),
    [("api_port", 0), ("api_port", 65536), ("search_limit", 1001), ("rate_limit_burst", 0), ("ollama_num_ctx", 1024)],
)
def test_numbers_out_of_range_are_refused(field: str, value: int) -> None:
    assert errors_of(**{field: value})[0][0] == field


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTION_NAME", "from_env")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example,")
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "1000")
    s = settings()
    assert s.collection_name == "from_env"
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.rate_limit_per_minute == 1000


def test_the_profile_and_the_process_local_limiter_are_derived() -> None:
    assert settings().profile == "embedded"
    assert settings(database_url="postgresql://db/x").profile == "production"
    assert settings().rate_limit_process_local
    assert settings(rate_limit_storage_uri="async+memory://").rate_limit_process_local
    assert not settings(rate_limit_storage_uri="redis://127.0.0.1:6379/0").rate_limit_process_local


@pytest.mark.parametrize(
    ("env", "enabled", "served"),
    [
        ("development", None, True),
        ("production", None, False),
        ("production", True, True),
        ("development", False, False),
    ],
)
def test_docs_are_on_in_development_and_off_in_production_unless_told(
    env: str, enabled: bool | None, served: bool
) -> None:
    assert settings(app_env=env, docs_enabled=enabled).serve_docs is served


def test_request_reading_limits_have_safe_defaults() -> None:
    s = settings()
    assert (s.request_header_timeout, s.request_body_timeout, s.max_header_bytes) == (10.0, 30.0, 64 * 1024)
    assert errors_of(request_header_timeout=0)
    assert errors_of(max_header_bytes=100)


def test_the_console_defaults() -> None:
    s = settings()
    assert (s.console_enabled, s.console_session_idle_minutes, s.console_session_max_hours, s.grafana_url) == (
        True,
        30.0,
        8.0,
        None,
    )


@pytest.mark.parametrize("url", ["http://grafana:3000", "https://grafana.example.com/d/memory-service?orgId=1"])
def test_grafana_urls_that_are_links(url: str) -> None:
    assert settings(grafana_url=url).grafana_url == url


def test_an_empty_grafana_url_is_none() -> None:
    assert settings(grafana_url="").grafana_url is None


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "grafana:3000", "ftp://grafana", 'http://x" onclick="alert(1)', "http://a b"]
)
def test_grafana_urls_that_are_refused(url: str) -> None:
    assert errors_of(grafana_url=url) == [("grafana_url", "Value error, must be an http:// or https:// URL")]


@pytest.mark.parametrize("field", ["console_session_idle_minutes", "console_session_max_hours"])
def test_console_session_lifetimes_are_positive(field: str) -> None:
    assert [loc for loc, _ in errors_of(**{field: 0})] == [field]
