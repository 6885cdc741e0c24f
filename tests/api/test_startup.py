"""The service refuses to start on what an operator must fix, and says what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from memory_service.errors import StartupError
from memory_service.providers.onnx import OnnxMiniLMEmbedder, default_model_files

from tests.support.server import ADMIN_KEY, DEV_KEY, ServiceProcess, embedded_conninfo, run_cli, start_fails

STRONG_KEY = "s3cret-bootstrap-admin-key-0123456789abcdef"


def test_production_refuses_well_known_keys_until_revoked(tmp_path: Path) -> None:
    data = tmp_path / "prod"
    with_dev = ServiceProcess(data, {}).start()  # development run: enables the seed keys
    with_dev.stop()

    output = start_fails(data, {"APP_ENV": "production"})
    assert "memory-service keys revoke --well-known" in output

    revoked = run_cli(data, "keys", "revoke", "--well-known", env={"APP_ENV": "production"})
    assert revoked.returncode == 0, revoked.stderr
    prod = ServiceProcess(data, {"APP_ENV": "production", "API_KEY": STRONG_KEY}).start()
    try:
        for key in (DEV_KEY, ADMIN_KEY, "mem0_docker_key_987654321"):
            with prod.client(key) as client:
                assert client.get("/status").status_code == 401
        with prod.client(STRONG_KEY) as bootstrap:
            status = bootstrap.get("/status")
            assert status.status_code == 200
            assert status.json()["data"]["environment"] == "production"
            assert bootstrap.get("/v1/admin/keys").status_code == 200
    finally:
        prod.stop()


@pytest.mark.parametrize(
    ("api_key", "message"),
    [("too-short-key", "at least 32 characters"), (ADMIN_KEY, "documented development keys")],
)
def test_production_refuses_a_weak_api_key(tmp_path: Path, api_key: str, message: str) -> None:
    output = start_fails(tmp_path / "weak", {"APP_ENV": "production", "API_KEY": api_key})
    assert message in output


def test_dimension_mismatch_refuses_to_start(tmp_path: Path) -> None:
    data = tmp_path / "dims"
    service = ServiceProcess(data, {}).start()
    with psycopg.connect(embedded_conninfo(data), autocommit=True) as conn:
        conn.execute("CREATE TABLE other_model (id uuid PRIMARY KEY, vector vector(768), payload jsonb)")
    service.stop()
    output = start_fails(data, {"COLLECTION_NAME": "other_model"})
    assert "stores 768-dimensional vectors" in output
    assert "produces 384" in output
    assert "COLLECTION_NAME" in output


def test_embedding_dims_that_the_model_cannot_produce_refuse_to_start(tmp_path: Path) -> None:
    output = start_fails(tmp_path / "dims2", {"EMBEDDING_DIMS": "768"})
    assert "EMBEDDING_DIMS=768" in output
    assert "384" in output


def test_model_file_hash_mismatch_is_refused(tmp_path: Path) -> None:
    model, tokenizer = default_model_files()
    tampered = tmp_path / "model.onnx"
    shutil.copyfile(model, tampered)
    with tampered.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(StartupError, match="sha256") as refused:
        OnnxMiniLMEmbedder(model_path=tampered, tokenizer_path=tokenizer)
    assert "embedding model" in str(refused.value)
    changed_tokenizer = tmp_path / "tokenizer.json"
    changed_tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    with pytest.raises(StartupError, match="embedding tokenizer"):
        OnnxMiniLMEmbedder(model_path=model, tokenizer_path=changed_tokenizer)


def test_pinned_files_load_and_embed(tmp_path: Path) -> None:
    embedder = OnnxMiniLMEmbedder()
    a, b, c = (embedder.embed(t) for t in ("I adore my dog", "I love my puppy", "Tax law of 1998"))
    cosine = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731 - vectors are normalised
    assert len(a) == 384
    assert cosine(a, b) > 0.5 > cosine(a, c)
