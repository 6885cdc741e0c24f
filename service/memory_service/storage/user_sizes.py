"""Which users own so many memories that the HNSW index beats an exact scan of their rows.

An exact search reads every row of the user (through the user index) and costs time in
proportion to the user's memories, whatever else the table holds; the HNSW index with a user
filter costs more as other users' memories accumulate (its iterative scan walks past them). Most
users own thousands of memories at most, so the exact scan is the default; a user above
SEARCH_EXACT_MAX_ROWS goes through the index (docs/capacity.md measured the crossover).

Who is that large comes from the planner's own statistics, not from a count per search:
ANALYZE (autovacuum runs it as the table changes) keeps the most common values of the user
index's expression with their frequencies, and a user large enough to matter is among them.
They are read at most every REFRESH_SECONDS, by whichever search finds them stale; a user who
grew since is searched exactly until then, which is slower, never wrong.
"""

from __future__ import annotations

import logging
import threading
import time

from memory_service.storage.database import Database

log = logging.getLogger(__name__)
REFRESH_SECONDS = 60.0

_LARGE_USERS = """
SELECT s.most_common_vals::text::text[], s.most_common_freqs, c.reltuples
FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename AND c.relnamespace = to_regnamespace(s.schemaname)
WHERE s.schemaname = current_schema() AND s.tablename = %s AND s.attname = 'expr'
"""


class UserSizes:
    """The set of large users of one collection, from the statistics of its user index."""

    def __init__(self, db: Database, table: str, threshold: int) -> None:
        self.db = db
        self.index = f"{table}_user_created_idx"
        self.threshold = threshold
        self._large: frozenset[str] = frozenset()
        self._checked = float("-inf")
        self._refreshing = threading.Lock()

    def is_large(self, user_key: str) -> bool:
        if time.monotonic() - self._checked > REFRESH_SECONDS and self._refreshing.acquire(blocking=False):
            try:
                self._large = self._read()
            except Exception as exc:  # statistics are an optimisation; the exact path is always right
                log.warning("reading the user statistics failed: %s", exc.__class__.__name__)
            finally:
                self._checked = time.monotonic()
                self._refreshing.release()
        return user_key in self._large

    def _read(self) -> frozenset[str]:
        with self.db.connection(read_only=True) as conn:
            row = conn.execute(_LARGE_USERS, (self.index,)).fetchone()
        if row is None or row[0] is None:
            return frozenset()
        values, frequencies, rows = row
        return frozenset(v for v, f in zip(values, frequencies, strict=True) if f * max(rows, 0) >= self.threshold)
