from django.apps import AppConfig


class FinetuningConfig(AppConfig):
    """OpenAI fine-tuning jobs: LoRA training as an exclusive kind of GPU work."""

    name = "finetuning"
    verbose_name = "Fine-tuning"

    def ready(self) -> None:
        from finetuning.work import FineTuningWork
        from jobs.worker import kinds

        # Training: the worker's second kind of GPU work, with the GPU to itself.
        kinds.register(FineTuningWork())
