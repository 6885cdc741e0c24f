"""Memory service: a self-hosted long-term memory REST API for AI agents, on mem0."""

import os as _os
from pathlib import Path as _Path

__version__ = "1.0.0"

# mem0 reads these at import time: telemetry stays off (the service talks only to its configured
# backends) and mem0's state directory lives under DATA_DIR instead of ~/.mem0.
_os.environ["MEM0_TELEMETRY"] = "False"
_os.environ.setdefault("MEM0_DIR", str(_Path(_os.environ.get("DATA_DIR", "./data")) / "mem0"))
