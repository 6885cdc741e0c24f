"""The migration chains, read without a database: each has exactly one head.

Engineers add revisions in parallel; two revisions with the same parent leave two heads, and
the service then refuses to start. This catches it in `make check`, before any service starts.
"""

from __future__ import annotations

from alembic.script import ScriptDirectory
from memory_service.storage import migrations


def test_each_chain_has_exactly_one_head() -> None:
    for chain in migrations.chains("memories"):
        script = ScriptDirectory.from_config(migrations._config(chain, None, "memories", None))
        heads = script.get_heads()
        assert len(heads) == 1, f"{chain.name} chain has heads {heads}: re-chain the newest revision"
