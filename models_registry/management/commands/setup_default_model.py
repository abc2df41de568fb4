"""Convert the embedded SmolLM2 model into the data folder and make sure it is registered."""

import time

from django.core.management.base import BaseCommand

from models_registry import builtin
from models_registry.services import register_model


class Command(BaseCommand):
    help = "Convert the embedded SmolLM2-135M-Instruct (GGUF) once and register it."

    def handle(self, *args, **options):
        folder = builtin.converted_folder()
        started = time.monotonic()
        if not (folder / "config.json").exists():
            self.stdout.write(f"Converting SmolLM2-135M-Instruct into {folder} (about 30 s)...")
        path = builtin.resolve_path(builtin.BUILTIN_PATH)
        register_model(
            builtin.DEFAULT_NAME,
            builtin.BUILTIN_PATH,
            owned_by="HuggingFaceTB",
            **builtin.ENGINE_SETTINGS,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{builtin.DEFAULT_NAME} ready at {path} ({time.monotonic() - started:.1f} s)"
            )
        )
