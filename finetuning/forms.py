"""The create form of the fine-tuning page: it shapes the input; the services check it."""

from __future__ import annotations

from django import forms

from models_registry.services import list_active_models

AUTO_HELP = "a number, or empty for auto"


class JobForm(forms.Form):
    training_upload = forms.FileField(required=False, label="Upload a training file (JSONL)")
    training_file = forms.ChoiceField(required=False, label="…or a stored fine-tune file")
    model = forms.ChoiceField(label="Base model")
    suffix = forms.CharField(required=False, max_length=64)
    n_epochs = forms.IntegerField(required=False, min_value=1, max_value=50, label="Epochs")
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=256, label="Batch size")
    learning_rate_multiplier = forms.FloatField(
        required=False, min_value=0.0001, max_value=10, label="LR multiplier"
    )
    priority = forms.IntegerField(required=False, min_value=-100, max_value=100, initial=0)

    def __init__(self, *args, files_choices=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(m, m) for m in list_active_models("generate")]
        self.fields["training_file"].choices = [("", "—"), *files_choices]

    def clean(self):
        data = super().clean()
        if not data.get("training_upload") and not data.get("training_file"):
            raise forms.ValidationError("Upload a training file or choose a stored one.")
        return data

    def hyperparameters(self) -> dict:
        names = ("n_epochs", "batch_size", "learning_rate_multiplier")
        return {n: self.cleaned_data[n] for n in names if self.cleaned_data.get(n) is not None}
