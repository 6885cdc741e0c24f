"""`memory-service`: serve the API, manage API keys and the schema, bridge stdio MCP clients.

`serve` runs uvicorn in-process for one worker, gunicorn with uvicorn workers for more. With
several workers the gunicorn master owns the embedded Postgres (workers connect to it) and the
Prometheus multiprocess directory, and the process-local `memory://` rate-limit storage is
refused: each worker would count alone and every limit would silently multiply.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the runtime imports stay lazy: `serve` must not import prometheus_client early
    from memory_service.domain.auth.keys import KeyService
    from memory_service.settings import Settings
    from memory_service.storage.database import Database, EmbeddedPostgres

# No locals in tracebacks: they would show API keys.
app = typer.Typer(
    help="Mem0 memory service", no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False
)
keys_app = typer.Typer(help="Manage API keys (stored hashed; a key is shown once, at creation)", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(
    help="Database schema: versioned migrations (applied at start; by hand here)", no_args_is_help=True
)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _prepare_multiprocess_dir(data_dir: Path) -> Path:
    path = (data_dir / "prometheus-multiproc").resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default API_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default GUNICORN_WORKERS or 1)")] = None,
) -> None:
    """Serve the API: uvicorn for one worker, gunicorn + uvicorn workers for several."""
    # Nothing here may import prometheus_client (metrics, ratelimit, main) before
    # PROMETHEUS_MULTIPROC_DIR is set: the client decides at import whether to write per-process files.
    from memory_service.errors import StartupError
    from memory_service.settings import Settings

    assert "prometheus_client" not in sys.modules, "PROMETHEUS_MULTIPROC_DIR must be set before the import"

    try:
        settings = Settings()
    except Exception as exc:
        raise _fail(f"invalid configuration: {exc}") from exc
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or int(os.environ.get("GUNICORN_WORKERS", "1"))
    os.environ["MEMORY_SERVICE_WORKERS"] = str(workers)  # each worker sizes its embedder's share of the CPUs
    if workers > 1 and settings.rate_limit_process_local:
        raise _fail(
            f"--workers {workers} with RATE_LIMIT_STORAGE_URI={settings.rate_limit_storage_uri} would give every "
            "worker its own counters and multiply each rate limit by the number of workers. Use Redis "
            "(RATE_LIMIT_STORAGE_URI=redis://host:6379/0) or a single worker."
        )
    from memory_service.storage.database import EMBEDDED_URI_ENV, EmbeddedPostgres

    embedded: EmbeddedPostgres | None = None
    try:
        if workers > 1:
            # Before anything imports prometheus_client (it decides at import where to write).
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_prepare_multiprocess_dir(settings.data_dir))
        if settings.embedded_database and EMBEDDED_URI_ENV not in os.environ:
            # This process owns the embedded Postgres and supervises it (storage/embedded.py);
            # the app (or every gunicorn worker) connects to it.
            embedded = EmbeddedPostgres(settings.data_dir, settings.embedded_pg_restart_timeout)
            os.environ[EMBEDDED_URI_ENV] = embedded.start()
        if workers == 1:
            lost = _serve_uvicorn(host, port, settings, embedded)
        else:
            lost = _serve_gunicorn(host, port, workers, embedded)
    except StartupError as exc:
        raise _fail(str(exc)) from exc
    finally:
        if embedded is not None:
            embedded.stop()
    if lost:
        console.print("[bold red]error:[/] the embedded Postgres died and could not be restarted; exiting")
        raise typer.Exit(code=3)


def _serve_uvicorn(host: str, port: int, settings: Settings, embedded: EmbeddedPostgres | None) -> bool:
    """Serve until a signal (True if it stopped because the embedded Postgres was lost)."""
    import asyncio
    import socket
    import threading

    import uvicorn

    from memory_service.gunicorn_conf import env_graceful_timeout, env_keepalive
    from memory_service.main import create_app
    from memory_service.serving import DrainingHttpToolsProtocol

    config = uvicorn.Config(
        create_app(),
        host=host,
        port=port,
        loop="uvloop",
        http=DrainingHttpToolsProtocol,  # the envelope and head limits (api/http_protocol.py), and draining
        access_log=False,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=env_keepalive(),
        timeout_graceful_shutdown=env_graceful_timeout(),
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            # Here, not after run(): uvicorn re-raises the SIGTERM it handled when run() ends,
            # which ends the process before any code after it.
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    server = Server(config)
    lost = threading.Event()

    def on_lost() -> None:
        lost.set()
        server.should_exit = True

    supervising = embedded.supervise(on_lost) if embedded is not None else None
    try:
        server.run()
    finally:
        if supervising is not None:
            supervising.set()
    return lost.is_set()


def _serve_gunicorn(host: str, port: int, workers: int, embedded: EmbeddedPostgres | None) -> bool:
    """Serve until a signal (True if it stopped because the embedded Postgres was lost)."""
    from memory_service.gunicorn_app import EMBEDDED_POSTGRES_LOST, GunicornApp

    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR"), "set before the import of prometheus_client"
    try:
        GunicornApp(f"{host}:{port}", workers, embedded).run()
    except SystemExit as exc:
        if exc.code == EMBEDDED_POSTGRES_LOST:
            return True
        raise
    return False


@app.command("mcp-stdio")
def mcp_stdio(
    base_url: Annotated[
        str, typer.Option(envvar="MEMORY_SERVICE_URL", help="The service's URL, e.g. https://memory.example.com")
    ],
    api_key: Annotated[
        str, typer.Option(envvar="MEMORY_SERVICE_API_KEY", help="An API key of the service (better from the env)")
    ],
    user_id: Annotated[
        str | None,
        typer.Option(envvar="MEMORY_SERVICE_USER_ID", help="Pin the connection to this user (X-User-ID)"),
    ] = None,
) -> None:
    """Serve MCP on stdin/stdout, forwarding to a remote service's /mcp (for desktop MCP clients)."""
    import anyio

    from memory_service.api.mcp.bridge import BridgeError, serve

    try:
        anyio.run(serve, base_url, api_key, user_id)
    except BridgeError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


def _open_database() -> tuple[Settings, Database]:
    from memory_service.settings import Settings
    from memory_service.storage.database import Database

    settings = Settings()
    db = Database(settings)
    db.open()
    return settings, db


def _migrated_database() -> tuple[Settings, Database]:
    """The database at this release's schema; the collection's dimension is the stored one, or
    the configured embedder's (so key commands work before the service ever started)."""
    from memory_service.providers.onnx import MINILM_DIMS
    from memory_service.storage.schema import ensure_schema, stored_dimension

    settings, db = _open_database()
    try:
        dims = stored_dimension(db, settings.collection_name) or settings.embedding_dims or MINILM_DIMS
        ensure_schema(db, settings.collection_name, dims, str(settings.embedder))
    except BaseException:
        db.close()
        raise
    return settings, db


def _key_store() -> tuple[Database, KeyService]:
    from memory_service.domain.auth.keys import KeyService
    from memory_service.storage.keys import KeyRepository

    settings, db = _migrated_database()
    return db, KeyService(KeyRepository(db), settings)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to")],
    role: Annotated[str, typer.Option(help="user, admin (its tenant's keys), operator (every tenant's)")] = "user",
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
    rate_limit: Annotated[int | None, typer.Option(min=1, help="Requests per minute for this key")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a key and print it once."""
    from memory_service.errors import ServiceError
    from memory_service.models.keys import Role

    if role not in ("user", "admin", "operator"):
        raise _fail("--role must be user, admin or operator")
    db, store = _key_store()
    try:
        key, info = store.create(tenant, Role(role), name, rate_limit)
    except ServiceError as exc:
        raise _fail(exc.message) from exc
    finally:
        db.close()
    if as_json:
        print(json.dumps({"key": key, **info.public()}))
    else:
        console.print(f"Created {info.role} key {info.id} for tenant [bold]{info.tenant}[/] (shown only once):")
        print(key)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List keys (never the keys themselves: only their prefixes)."""
    db, store = _key_store()
    try:
        infos = store.list_keys(tenant, include_revoked)
    finally:
        db.close()
    if as_json:
        print(json.dumps([i.public() for i in infos]))
        return
    table = Table("id", "prefix", "tenant", "role", "name", "rate/min", "created", "revoked")
    for i in infos:
        table.add_row(
            i.id,
            i.prefix + "…",
            i.tenant,
            i.role.value,
            i.name or "",
            str(i.rate_limit_per_minute or ""),
            i.created_at.strftime("%Y-%m-%d %H:%M"),
            i.revoked_at.strftime("%Y-%m-%d %H:%M") if i.revoked_at else "",
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str | None, typer.Argument(help="Id of the key to revoke")] = None,
    well_known: Annotated[bool, typer.Option("--well-known", help="Revoke the seed's development keys")] = False,
) -> None:
    """Revoke a key by id, or the well-known development keys."""
    from memory_service.errors import ServiceError

    if (key_id is None) == (not well_known):
        raise _fail("give a key id or --well-known")
    db, store = _key_store()
    try:
        if well_known:
            console.print(f"Revoked {store.revoke_well_known()} well-known key(s)")
        else:
            assert key_id is not None
            info = store.revoke(key_id)
            console.print(f"Revoked key {info.id} ({info.prefix}…, tenant {info.tenant})")
    except ServiceError as exc:
        raise _fail(exc.message) from exc
    finally:
        db.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to this release's schema (the service also does it at start)."""
    from memory_service.errors import StartupError
    from memory_service.storage import migrations

    try:
        settings, db = _migrated_database()
    except StartupError as exc:
        raise _fail(str(exc)) from exc
    try:
        revisions = migrations.current(db.conninfo_in_use, settings.collection_name)
    finally:
        db.close()
    console.print(f"Schema at {revisions}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of each migration chain (service tables, the memory collection)."""
    from memory_service.storage import migrations

    settings, db = _open_database()
    try:
        revisions = migrations.current(db.conninfo_in_use, settings.collection_name)
    finally:
        db.close()
    heads = migrations.head_revisions(settings.collection_name)
    for chain, revision in revisions.items():
        state = "up to date" if revision == heads[chain] else f"this release's head is {heads[chain]}"
        print(f"{chain}: {revision or '(none)'} ({state})")


@db_app.command("history")
def db_history() -> None:
    """List the migrations this release has, oldest first (no database needed)."""
    from memory_service.settings import Settings
    from memory_service.storage import migrations

    table = Table("chain", "revision", "revises", "what")
    for chain, revision, down, doc in migrations.history(Settings().collection_name):
        table.add_row(chain, revision, down or "", doc.splitlines()[0] if doc else "")
    Console().print(table)


def main() -> None:
    app(prog_name="memory-service")


if __name__ == "__main__":
    main()
