"""The file checks that run before a model is registered, and vLLM's list of architectures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from batchserver.errors import Invalid
from models_registry.inspection import check_folder, check_gguf_file, supported_architectures
from tests.models_registry.conftest import set_config


def test_the_architecture_list_is_the_one_vllm_itself_reports():
    # given vLLM's own answer, computed the expensive way (import, in a subprocess: ~10 s)
    script = (
        "import json; from vllm.model_executor.models.registry import ModelRegistry;"
        "print(json.dumps(sorted(ModelRegistry.get_supported_archs())))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    expected = json.loads(done.stdout.strip().splitlines()[-1])

    # then the cheap read of the registry's source finds the same names
    found = supported_architectures()
    assert found is not None
    assert sorted(found.all) == expected
    assert "LlamaForCausalLM" in found.all and "BertModel" in found.embedding


def test_a_good_folder_passes_with_its_architecture_and_kind(model_folder):
    report = check_folder(model_folder)
    assert report.architectures == ("LlamaForCausalLM",)
    assert report.kind == "generate"
    assert report.weight_bytes > 100_000_000


def test_an_embedding_architecture_makes_an_embedding_model(model_folder):
    set_config(model_folder, architectures=["BertModel"])
    assert check_folder(model_folder).kind == "embed"


def _broken(folder, how: str) -> None:
    if how == "missing_config":
        (folder / "config.json").unlink()
    elif how == "invalid_config":
        (folder / "config.json").write_text("{not json")
    elif how == "missing_tokenizer":
        (folder / "tokenizer.json").unlink()
    elif how == "missing_weights":
        (folder / "model.safetensors").unlink()
    elif how == "missing_shard":
        index = {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    elif how == "unknown_architecture":
        set_config(folder, architectures=["TotallyNewForCausalLM"])
    elif how == "no_architecture":
        set_config(folder, architectures=[])


@pytest.mark.parametrize(
    ("how", "code", "words"),
    [
        ("missing_config", "missing_config", "no config.json"),
        ("invalid_config", "invalid_config", "not valid JSON"),
        ("missing_tokenizer", "missing_tokenizer", "no tokenizer"),
        ("missing_weights", "missing_weights", "no weights"),
        ("missing_shard", "missing_weights", "model-00002-of-00002.safetensors"),
        ("unknown_architecture", "unsupported_architecture", "TotallyNewForCausalLM"),
        ("no_architecture", "unknown_architecture", "names no architecture"),
    ],
)
def test_a_broken_folder_is_refused_with_the_reason(model_folder, how, code, words):
    _broken(model_folder, how)
    with pytest.raises(Invalid) as caught:
        check_folder(model_folder)
    assert caught.value.code == code and caught.value.param == "path"
    assert words in caught.value.message


def test_a_retired_architecture_says_which_vllm_served_it(model_folder):
    found = supported_architectures()
    assert found is not None and found.retired
    name, version = next(iter(found.retired.items()))
    set_config(model_folder, architectures=[name])
    with pytest.raises(Invalid, match=f"until vLLM {version}"):
        check_folder(model_folder)


def test_paths_must_be_absolute_and_exist(tmp_path):
    with pytest.raises(Invalid, match="absolute"):
        check_folder("relative/folder")
    with pytest.raises(Invalid, match="No folder"):
        check_folder(tmp_path / "absent")
    (tmp_path / "x.gguf").write_bytes(b"PK\x03\x04 a zip, not a gguf")
    with pytest.raises(Invalid) as caught:
        check_gguf_file(tmp_path / "x.gguf")
    assert caught.value.code == "not_gguf"
