"""API keys: key material, the seed's development keys, the production policy and a short cache.

Keys are 256-bit random tokens, so a single SHA-256 is the right hash (as for GitHub or Stripe
tokens): nothing to brute-force, and lookups by hash stay one index probe. Only the hash and a
short display prefix are stored; the key itself is shown once, at creation.

A lookup per request would cost a database round trip on every call; valid keys are cached for
a few seconds instead (revocation through this process clears its cache at once; other
processes follow within KEY_CACHE_SECONDS). Unknown keys are not cached, so a new key works
immediately; guessing is slowed by the per-address rate limit instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from memory_service.core.ids import validate_tenant
from memory_service.errors import Forbidden, InvalidRequest, NotFound, StartupError
from memory_service.models.keys import KeyInfo, Principal, Role
from memory_service.settings import Settings
from memory_service.storage.keys import KeyRepository

KEY_PREFIX = "m0sk_"
DISPLAY_PREFIX_LENGTH = 12
KEY_CACHE_SECONDS = 10.0
KEY_CACHE_SIZE = 10_000
BOOTSTRAP_KEY_ID = "bootstrap"
MIN_PRODUCTION_KEY_LENGTH = 32

MAX_RATE_LIMIT_PER_MINUTE = 1_000_000_000  # a key's own limit; the column is a 32-bit integer


@dataclass(frozen=True, slots=True)
class WellKnownKey:
    key: str
    name: str
    role: Role
    tenant: str = "default"


# The seed's documented keys: enabled only with APP_ENV=development, so its curls work verbatim.
# The seed's admin key is development's stand-in for the bootstrap key, so it is an operator
# (it provisions keys for any tenant, as the test suites and the load tests do).
WELL_KNOWN_KEYS: tuple[WellKnownKey, ...] = (
    WellKnownKey("mem0_dev_key_123456789", "seed development key", Role.USER),
    WellKnownKey("mem0_docker_key_987654321", "seed docker key", Role.USER),
    WellKnownKey("mem0_admin_key_111222333", "seed admin key", Role.OPERATOR),
)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


WELL_KNOWN_HASHES = frozenset(hash_key(k.key) for k in WELL_KNOWN_KEYS)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def is_well_known(key: str) -> bool:
    return hash_key(key) in WELL_KNOWN_HASHES


class KeyService:
    """Who a key is, and the administration of keys (CLI and /v1/admin/keys)."""

    def __init__(self, repository: KeyRepository, settings: Settings) -> None:
        self.repository = repository
        self.settings = settings
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._bootstrap_hash = hash_key(settings.api_key.get_secret_value()) if settings.api_key else None

    @property
    def bootstrap_hash(self) -> str | None:
        """SHA-256 of API_KEY (the bootstrap admin key, not in the key store), when set."""
        return self._bootstrap_hash

    # -- start-up policy -----------------------------------------------------------------------

    def apply_environment_policy(self) -> None:
        """Development enables the seed's keys; production refuses to run while any works."""
        api_key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        if self.settings.development:
            self.repository.enable_well_known(
                (hash_key(k.key), display_prefix(k.key), k.tenant, k.role, k.name) for k in WELL_KNOWN_KEYS
            )
            return
        if api_key is not None:
            if is_well_known(api_key):
                raise StartupError("API_KEY is one of the documented development keys; choose a secret one")
            if len(api_key) < MIN_PRODUCTION_KEY_LENGTH:
                raise StartupError(
                    f"API_KEY must be at least {MIN_PRODUCTION_KEY_LENGTH} characters in production "
                    "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        if self.repository.count_active(WELL_KNOWN_HASHES):
            raise StartupError(
                "APP_ENV=production, but the documented development keys are enabled in the key store "
                "(a development run used this database). Revoke them with: memory-service keys revoke --well-known"
            )

    # -- per request ---------------------------------------------------------------------------

    def cached(self, key: str) -> Principal | None:
        """The principal without touching the database: bootstrap key or a fresh cache entry."""
        digest = hash_key(key)
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            return Principal(BOOTSTRAP_KEY_ID, "default", Role.OPERATOR, bootstrap=True)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def authenticate(self, key: str) -> Principal | None:
        if (principal := self.cached(key)) is not None:
            return principal
        digest = hash_key(key)
        now = time.monotonic()
        principal = self.repository.find_active(digest)
        if principal is None:
            self._cache.pop(digest, None)
            return None
        self._cache[digest] = (principal, now + KEY_CACHE_SECONDS)
        self._cache.move_to_end(digest)
        while len(self._cache) > KEY_CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    # -- administration --------------------------------------------------------------------------
    # `by` is the calling key over HTTP; None is the command line (the host's operator).

    def create(
        self,
        tenant: str,
        role: Role,
        name: str | None = None,
        rate_limit_per_minute: int | None = None,
        *,
        by: Principal | None = None,
    ) -> tuple[str, KeyInfo]:
        if by is not None:
            if not by.manages(tenant):
                raise Forbidden(
                    f"An admin key manages the keys of its own tenant ('{by.tenant}') only",
                    {"tenant": tenant},
                )
            if role is Role.OPERATOR and not by.bootstrap:
                raise Forbidden("Operator keys are created with the command line or the bootstrap key (API_KEY)")
        try:
            validate_tenant(tenant)
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"field": "tenant"}) from exc
        if rate_limit_per_minute is not None and not 1 <= rate_limit_per_minute <= MAX_RATE_LIMIT_PER_MINUTE:
            raise InvalidRequest(f"rate_limit must be 1-{MAX_RATE_LIMIT_PER_MINUTE} requests per minute")
        key = generate_key()
        info = self.repository.insert(hash_key(key), display_prefix(key), tenant, role, name, rate_limit_per_minute)
        return key, info

    def list_keys(
        self, tenant: str | None = None, include_revoked: bool = False, *, by: Principal | None = None
    ) -> list[KeyInfo]:
        """Every key (of `tenant`); an admin lists the user and admin keys of its own tenant."""
        if by is not None and not by.is_operator:
            if tenant is not None and tenant != by.tenant:
                raise Forbidden(
                    f"An admin key manages the keys of its own tenant ('{by.tenant}') only", {"tenant": tenant}
                )
            keys = self.repository.list(by.tenant, include_revoked)
            return [k for k in keys if k.role is not Role.OPERATOR]
        return self.repository.list(tenant, include_revoked)

    def revoke(self, key_id: str, *, by: Principal | None = None) -> KeyInfo:
        """Revoke a key; a key an admin may not manage is not found, like a key that does not exist."""
        not_found = NotFound(f"API key '{key_id}' not found", {"id": key_id})
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            raise not_found from None
        if by is not None and not by.is_operator:
            current = self.repository.get(parsed)
            if current is None or current.tenant != by.tenant or current.role is Role.OPERATOR:
                raise not_found
        info = self.repository.revoke(parsed)
        if info is None:
            raise not_found
        self._cache.clear()
        return info

    def revoke_well_known(self) -> int:
        count = self.repository.revoke_hashes(WELL_KNOWN_HASHES)
        self._cache.clear()
        return count
