"""A registry entry's engine settings, and the ``vllm serve`` arguments the worker builds from them.

The serve arguments come from vLLM's own parser (no engine is started: parsing is cheap), so these
tests also catch an upgrade of vLLM that renames an argument the registry sets.
"""

from __future__ import annotations

import pytest

from jobs.runner import model_spec
from jobs.worker.engine.base import ModelLoadError, ModelSpec
from models_registry.models import Model
from models_registry.services import register_model, register_version

pytestmark = pytest.mark.django_db


def test_unset_settings_are_left_to_the_engine():
    # given a model with only the required settings
    model = Model(name="m", path="/models/m")

    # then its engine settings name the defaults and nothing that was left empty
    assert model.engine_settings() == {
        "dtype": "auto",
        "tensor_parallel_size": 1,
        "enforce_eager": False,
    }


def test_every_set_setting_and_the_extra_arguments_reach_the_engine():
    # given a model with every engine setting filled in
    model = Model(
        name="m",
        dtype="bfloat16",
        max_model_len=4096,
        gpu_memory_utilization=0.8,
        tensor_parallel_size=2,
        quantization="awq",
        enforce_eager=True,
        cpu_kvcache_space_gib=4,
        extra_args={"max_num_seqs": 64},
    )

    # then each is passed on, the extra arguments under "extra"
    assert model.engine_settings() == {
        "dtype": "bfloat16",
        "tensor_parallel_size": 2,
        "enforce_eager": True,
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.8,
        "quantization": "awq",
        "cpu_kvcache_space_gib": 4,
        "extra": {"max_num_seqs": 64},
    }


def test_a_version_inherits_its_parents_engine_settings_and_counts_up():
    # given a registered base model
    base = register_model("base", "/models/base", max_model_len=1024, enforce_eager=True)

    # when two fine-tunes are registered on it, the second overriding a setting
    first = register_version(name="ft:base:one", path="/models/ft1", parent=base)
    second = register_version(name="ft:base:two", path="/models/ft2", parent=base, dtype="float16")

    # then both carry the lineage and the parent's settings
    assert (first.version, second.version) == (2, 3)
    assert first.parent == base and first.base == base
    assert first.origin == Model.Origin.FINE_TUNED
    assert first.max_model_len == 1024 and first.enforce_eager
    assert second.dtype == "float16"


def _serve_args(**settings):
    vllm_backend = pytest.importorskip("jobs.worker.engine.vllm_backend")
    spec = ModelSpec(name="served-name", path="/models/m", settings=settings)
    return vllm_backend.build_serve_args(spec)


def test_serve_arguments_carry_the_name_settings_and_extra_arguments():
    # when the serve arguments are built for a model with settings and an extra argument
    args = _serve_args(max_model_len=512, dtype="float32", extra={"max_num_seqs": 7})

    # then vLLM's parser holds them under their own names
    assert args.served_model_name == ["served-name"]
    assert args.model == "/models/m"
    assert args.max_model_len == 512
    assert args.dtype == "float32"
    assert args.max_num_seqs == 7
    assert args.runner == "generate"


def test_an_unknown_extra_argument_is_a_load_error_naming_it():
    with pytest.raises(ModelLoadError, match="no_such_argument"):
        _serve_args(extra={"no_such_argument": 1})


def test_the_spec_the_worker_loads_is_the_registry_entry():
    # given a registered model
    model = register_model("spec-model", "/models/spec", max_model_len=256)

    # then the worker's spec names it, its folder and its settings
    spec = model_spec(model)
    assert (spec.name, spec.path, spec.kind) == ("spec-model", "/models/spec", "generate")
    assert spec.settings["max_model_len"] == 256
