"""The forms of the registry pages (what they accept; the services check the values)."""

from __future__ import annotations

from typing import Any

from django import forms

from models_registry.models import ModelImport

DTYPE_CHOICES = [("", "(default)")] + [(d, d) for d in ("auto", "float32", "float16", "bfloat16")]


class EngineSettingsForm(forms.Form):
    dtype = forms.ChoiceField(choices=DTYPE_CHOICES, required=False)
    max_model_len = forms.IntegerField(required=False, min_value=1, label="Context length")
    quantization = forms.CharField(required=False, max_length=32)
    cpu_kvcache_space_gib = forms.IntegerField(required=False, min_value=1, label="KV cache (GiB)")
    gpu_memory_utilization = forms.FloatField(required=False, min_value=0.05, max_value=1.0)
    enforce_eager = forms.BooleanField(required=False, label="Eager mode")

    def settings(self) -> dict[str, Any]:
        """The engine settings given (blank ones left out, eager only when ticked)."""
        data = self.cleaned_data
        chosen = {
            k: data[k]
            for k in ("dtype", "max_model_len", "quantization", "cpu_kvcache_space_gib")
            if data.get(k) not in (None, "")
        }
        if data.get("gpu_memory_utilization") is not None:
            chosen["gpu_memory_utilization"] = data["gpu_memory_utilization"]
        if data.get("enforce_eager"):
            chosen["enforce_eager"] = True
        return chosen


class AddModelForm(EngineSettingsForm):
    source_kind = forms.ChoiceField(
        choices=ModelImport.Source.choices, widget=forms.RadioSelect, initial="folder"
    )
    source = forms.CharField(
        max_length=500, help_text="A folder or a .gguf file on the server, or a hub id (org/name)."
    )
    name = forms.CharField(max_length=200, required=False, help_text="Served id; default: source.")
    kind = forms.ChoiceField(
        choices=[("", "(from the architecture)"), ("generate", "generate"), ("embed", "embed")],
        required=False,
    )
    owned_by = forms.CharField(max_length=100, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def add_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        found: dict[str, Any] = {
            "source_kind": data["source_kind"],
            "source": data["source"],
            "name": data["name"],
        }
        for key in ("kind", "owned_by", "description"):
            if data.get(key):
                found[key] = data[key]
        return {**found, **self.settings()}


class VariantForm(EngineSettingsForm):
    name = forms.CharField(max_length=200, help_text="The variant's served id.")
    description = forms.CharField(required=False, max_length=500)


class TestForm(forms.Form):
    prompts = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One prompt a line; empty: three short built-in prompts.",
    )
    max_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=32)
