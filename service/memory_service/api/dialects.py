"""The two dialects on one port, and the one rule that tells them apart: the path.

- `contract`: the seed's API (docs/api.md): no trailing slash, the envelope.
- `platform`: the mem0 Platform's REST dialect (api/platform/, docs/mem0-compat.md), which mem0's
  own clients speak: every path ends with `/`, bodies are the Platform's shapes.

A path ending in `/` (other than `/` itself, and the console's pages under `/console/`) is the
Platform's, any other the contract's. That
holds for every route (tests/compat/test_dialects.py checks the OpenAPI document), and it decides
the shape of errors for paths no route matches, so a client always hears its own dialect. The app
never redirects between `/x` and `/x/` (main.py turns the router's slash redirect off): that
redirect would hand a request to the other dialect.
"""

from __future__ import annotations

CONTRACT = "contract"
PLATFORM = "platform"
PLATFORM_TAG = "mem0 Platform compatible"


CONSOLE_PREFIX = "/console"  # HTML pages (api/console/), neither dialect; counted with the contract


def dialect_of(path: str) -> str:
    if path.startswith(CONSOLE_PREFIX + "/"):
        return CONTRACT
    return PLATFORM if len(path) > 1 and path.endswith("/") else CONTRACT
