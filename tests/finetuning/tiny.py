"""A tiny, randomly initialised Llama with SmolLM2's tokenizer and chat template.

Real peft + Trainer training on it takes a second or two, so the worker, the lifecycle and the
failure paths are tested on real training without the 135M model; the SDK test on the real
engine trains SmolLM2 itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def make_tiny_model(smollm2_folder: str | Path, folder: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (folder / "model.safetensors").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(smollm2_folder)
    config = AutoConfig.from_pretrained(source)
    config.hidden_size, config.intermediate_size = 32, 64
    config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads = 2, 4, 2
    config.head_dim = 8
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    for name in (*TOKENIZER_FILES, "generation_config.json"):
        if (source / name).exists():
            shutil.copy2(source / name, folder / name)
    return folder
