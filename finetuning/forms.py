"""The create form of the fine-tuning page: it shapes the input; the services check it."""

from __future__ import annotations

from django import forms

from models_registry.services import list_active_models

AUTO_HELP = "a number, or empty for auto"


# What a curation export for fine-tuning takes from the dataset (curation's selections).
EXPORT_SELECTIONS = [("accepted", "accepted records"), ("gold", "gold records")]


class JobForm(forms.Form):
    training_upload = forms.FileField(required=False, label="Upload a training file (JSONL)")
    training_file = forms.ChoiceField(required=False, label="…or a stored fine-tune file")
    curation_dataset = forms.ChoiceField(required=False, label="…or export a curation dataset")
    curation_selection = forms.ChoiceField(
        required=False, choices=EXPORT_SELECTIONS, initial="accepted", label="Export"
    )
    model = forms.ChoiceField(label="Base model")
    suffix = forms.CharField(required=False, max_length=64)
    n_epochs = forms.IntegerField(required=False, min_value=1, max_value=50, label="Epochs")
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=256, label="Batch size")
    learning_rate_multiplier = forms.FloatField(
        required=False, min_value=0.0001, max_value=10, label="LR multiplier"
    )
    priority = forms.IntegerField(required=False, min_value=-100, max_value=100, initial=0)

    def __init__(self, *args, files_choices=(), dataset_choices=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(m, m) for m in list_active_models("generate")]
        self.fields["training_file"].choices = [("", "—"), *files_choices]
        self.fields["curation_dataset"].choices = [("", "—"), *dataset_choices]

    def clean(self):
        data = super().clean()
        sources = ("training_upload", "training_file", "curation_dataset")
        chosen = [name for name in sources if data.get(name)]
        if not chosen:
            raise forms.ValidationError(
                "Upload a training file, choose a stored one or a curation dataset to export."
            )
        if len(chosen) > 1:
            raise forms.ValidationError(
                "Choose one source of training data: an upload, a stored file or a curation export."
            )
        return data

    def hyperparameters(self) -> dict:
        names = ("n_epochs", "batch_size", "learning_rate_multiplier")
        return {n: self.cleaned_data[n] for n in names if self.cleaned_data.get(n) is not None}
