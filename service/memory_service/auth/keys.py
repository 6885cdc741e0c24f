"""Key material: generation, hashing, and the seed's well-known development keys.

Keys are 256-bit random tokens, so a single SHA-256 is the right hash (as for GitHub or Stripe
tokens): nothing to brute-force, and lookups by hash stay one index probe. Only the hash and a
short display prefix are stored; the key itself is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "m0sk_"
DISPLAY_PREFIX_LENGTH = 12


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class WellKnownKey:
    key: str
    name: str
    role: Role
    tenant: str = "default"


# The seed's documented keys: enabled only with APP_ENV=development, so its curls work verbatim.
WELL_KNOWN_KEYS: tuple[WellKnownKey, ...] = (
    WellKnownKey("mem0_dev_key_123456789", "seed development key", Role.USER),
    WellKnownKey("mem0_docker_key_987654321", "seed docker key", Role.USER),
    WellKnownKey("mem0_admin_key_111222333", "seed admin key", Role.ADMIN),
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
