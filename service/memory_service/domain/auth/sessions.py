"""Console sessions: an API key exchanged for a short-lived, server-side session.

The browser holds only an opaque random id (256 bits) in an HttpOnly cookie; the key itself is
never stored in the browser, a URL or a page. The session lives in Postgres
(storage/console_sessions.py), so every worker and host sees it, and carries:

- the key it was opened with (by hash): revoking or rotating the key ends the session at its next
  request, on every process, with no cache to wait for;
- the key's tenant and role, fixed at sign-in, which scope everything the console does;
- an idle timeout and an absolute deadline (CONSOLE_SESSION_IDLE_MINUTES, _MAX_HOURS);
- a CSRF token (synchronizer token) that every state-changing form must send back.

Blocking (one database call each): call from a thread, like KeyService.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from memory_service.domain.auth.keys import BOOTSTRAP_KEY_ID, KeyService, hash_key
from memory_service.models.keys import Principal, Role
from memory_service.settings import Settings
from memory_service.storage.console_sessions import ConsoleSessionStore

PURGE_GRACE_SECONDS = 24 * 3600.0


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live session: who is signed in, and the token its forms must carry."""

    id_hash: str
    principal: Principal
    csrf_token: str
    expires_at: datetime

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())


class SessionService:
    def __init__(self, store: ConsoleSessionStore, keys: KeyService, settings: Settings) -> None:
        self.store = store
        self.keys = keys
        self.idle_seconds = settings.console_session_idle_minutes * 60.0
        self.lifetime_seconds = settings.console_session_max_hours * 3600.0

    def open(self, key: str) -> tuple[str, Principal] | None:
        """Exchange a valid key for a new session: its id (for the cookie) and the principal;
        None for a key that does not authenticate."""
        principal = self.keys.authenticate(key)
        if principal is None:
            return None
        session_id = secrets.token_urlsafe(32)
        self.store.insert(
            hash_session_id(session_id),
            hash_key(key),
            principal.key_id,
            principal.tenant,
            principal.role.value,
            secrets.token_urlsafe(32),
            self.lifetime_seconds,
        )
        self.store.purge(PURGE_GRACE_SECONDS)
        return session_id, principal

    def resume(self, session_id: str) -> ConsoleSession | None:
        """The live session of a cookie's id (restarting its idle clock), or None: unknown, signed
        out, expired, or its key revoked."""
        if not session_id or len(session_id) > 128:
            return None
        id_hash = hash_session_id(session_id)
        row = self.store.touch(id_hash, self.idle_seconds, self.keys.bootstrap_hash)
        if row is None:
            return None
        principal = Principal(row.key_id, row.tenant, Role(row.role), row.rate_limit_per_minute)
        return ConsoleSession(id_hash, principal, row.csrf_token, row.expires_at)

    def close(self, session: ConsoleSession) -> None:
        self.store.revoke(session.id_hash)

    def end(self, session_id: str) -> None:
        """End a session known only by its cookie's id (replaced at sign-in, or refused)."""
        self.store.revoke(hash_session_id(session_id))

    def key_revoked(self, key_id: str) -> int:
        """End the sessions of a key just revoked (its next request would fail anyway)."""
        if key_id == BOOTSTRAP_KEY_ID:
            return 0
        return self.store.revoke_key(key_id)
