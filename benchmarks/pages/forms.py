"""Forms of the benchmark pages: they shape the input; the services check the values."""

from __future__ import annotations

from django import forms

from benchmarks import scorers as scoring
from benchmarks.models import CloudPrice, Dataset, GpuPrice
from benchmarks.registry import active_chat_models


class RunForm(forms.Form):
    name = forms.CharField(required=False, max_length=200)
    dataset = forms.ChoiceField()
    models = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    temperature = forms.CharField(initial="0", max_length=20)
    max_tokens = forms.CharField(initial="64", max_length=20, label="Max tokens")
    top_p = forms.CharField(required=False, max_length=20, label="Top p")
    seed = forms.CharField(required=False, max_length=20)
    repetitions = forms.CharField(initial="1", max_length=5)
    scorers = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    regex = forms.CharField(
        required=False, max_length=500, help_text="Regex scorer; default: the reference as a word"
    )
    gpu_kind = forms.ChoiceField(required=False, label="GPU kind")
    cloud_price = forms.ChoiceField(required=False, label="Cloud price")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [
            (d.pk, f"{d.name} ({d.item_count} prompts)") for d in Dataset.objects.all()
        ]
        self.fields["models"].choices = [(m, m) for m in active_chat_models()]
        self.fields["scorers"].choices = [(s.name, s.label) for s in scoring.all_scorers().values()]
        self.fields["scorers"].initial = list(scoring.DEFAULT_SCORERS)
        kinds = list(GpuPrice.objects.values_list("kind", flat=True))
        self.fields["gpu_kind"].choices = [("", "none")] + [(k, k) for k in kinds]
        self.fields["gpu_kind"].initial = kinds[0] if len(kinds) == 1 else ""
        self.fields["cloud_price"].choices = [("", "none")] + [
            (p.pk, p.name) for p in CloudPrice.objects.all()
        ]


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    file = forms.FileField(help_text="JSONL: one {id, messages, reference, tags} per line")


class FromFileForm(forms.Form):
    name = forms.CharField(max_length=200)
    file_id = forms.CharField(max_length=64, label="File id", help_text="e.g. a curation export")


class GpuPriceForm(forms.Form):
    kind = forms.CharField(max_length=100, label="GPU kind")
    hourly_price = forms.CharField(max_length=30, label="Price per hour")


class CloudPriceForm(forms.Form):
    name = forms.CharField(max_length=100, label="Cloud price name")
    input_per_million = forms.CharField(max_length=30, label="Input / 1M tokens")
    output_per_million = forms.CharField(max_length=30, label="Output / 1M tokens")
