"""Memory service: a self-hosted long-term memory REST API for AI agents, on mem0."""

import os as _os
from pathlib import Path as _Path

__version__ = "1.0.0"

# mem0 and onnxruntime read these at import time: their telemetry stays off (the service talks only
# to its configured backends; onnxruntime's builds report to Microsoft's 1DS collector otherwise),
# and mem0's state directory lives under DATA_DIR instead of ~/.mem0.
_os.environ["MEM0_TELEMETRY"] = "False"
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"
_os.environ.setdefault("MEM0_DIR", str(_Path(_os.environ.get("DATA_DIR", "./data")) / "mem0"))
