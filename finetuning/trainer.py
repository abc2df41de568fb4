"""The training process: LoRA on a chat JSONL with peft and the transformers Trainer.

Run as ``python -m finetuning.trainer <job folder> train|merge [checkpoint]`` by
``finetuning.process`` in a process group of its own; it imports no Django and touches no
database. It reads ``config.json`` and the training data from the job folder and reports on
stdout, one JSON object per line prefixed with ``@@ft`` (the parent turns them into events,
checkpoints and progress):

- ``started``: total steps, examples, the step it resumed from;
- ``step``: loss, cumulative trained tokens and training seconds;
- ``checkpoint``: a checkpoint folder complete on disk (the resumable state);
- ``stopped``: a stop file asked it to checkpoint and leave (a slice's end, a pause);
- ``trained`` then ``merged``: the adapter merged into a full model folder, renamed into place.

A checkpoint is saved every ``checkpoint_steps`` steps, at each epoch's end, and when stopped;
``train`` resumes from the newest one, so a killed worker loses at most the steps since.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

MARK = "@@ft "
STATE_FILE = "batchserver_state.json"  # cumulative tokens and seconds, saved in each checkpoint


def report(event: str, **data: Any) -> None:
    print(MARK + json.dumps({"event": event, **data}), flush=True)


def die_with_parent(parent_pid: int) -> None:
    """The worker's death kills this whole group (the kernel's signal, and a watcher thread)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def read_examples(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def tokenize(tokenizer, messages: list[dict[str, Any]], max_length: int) -> dict[str, list[int]]:
    """Token ids of a conversation in the model's chat template; labels only on assistant turns
    with ``weight`` 1 (-100 elsewhere). Each message's tokens are the difference between the
    templated prefixes that end before and after it."""
    ids: list[int] = []
    labels: list[int] = []
    for i, message in enumerate(messages):
        prefix = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        upto = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        new = upto[len(ids) :]
        trained = message.get("role") == "assistant" and message.get("weight", 1) != 0
        ids = list(upto)
        labels += list(new) if trained else [-100] * len(new)
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


class Collator:
    """Pads a batch to its longest example (labels padded with -100)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]):
        import torch

        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> Any:
            return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])

        return {
            "input_ids": pad("input_ids", self.pad_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", -100),
        }


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint: ``trainer_state.json`` is the Trainer's last file, and
    ours (``STATE_FILE``, the cumulative tokens and seconds) is written after it."""
    done = [
        p
        for p in output_dir.glob("checkpoint-*")
        if (p / "trainer_state.json").exists() and (p / STATE_FILE).exists()
    ]
    return max(done, key=checkpoint_step, default=None)


def checkpoint_step(folder: Path) -> int:
    """The step a checkpoint folder (``checkpoint-N``) was saved at."""
    return int(folder.name.split("-")[1])


def checkpoint_loss(folder: Path) -> float | None:
    """The training loss logged at a checkpoint's step (from its ``trainer_state.json``)."""
    state = json.loads((folder / "trainer_state.json").read_text())
    step = state.get("global_step")
    losses = [
        e["loss"] for e in state.get("log_history", []) if e.get("step") == step and "loss" in e
    ]
    return float(losses[-1]) if losses else None


def lora_config():
    from peft import LoraConfig

    # "all-linear" leaves out the output layer; SmolLM2 ties it to the input embeddings, which
    # must never be targeted (merging would corrupt them, vLLM rejects such adapters).
    return LoraConfig(
        task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear"
    )


def counting_trainer(base: type, state: dict[str, float]) -> type:
    """The Trainer, counting the tokens (attention mask) of every batch it trains on."""

    class CountingTrainer(base):  # type: ignore[misc,valid-type]
        def training_step(self, model, inputs, *args, **kwargs):
            state["tokens"] += float(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, *args, **kwargs)

    return CountingTrainer


def make_callback(job_dir: Path, state: dict[str, float]):
    from transformers import TrainerCallback

    stop_file = job_dir / "stop"

    class Progress(TrainerCallback):
        """Reports steps and checkpoints; checkpoints at epoch ends and when asked to stop."""

        def __init__(self) -> None:
            self.step_started = time.monotonic()
            self.last_step_seconds = 0.0

        def on_step_begin(self, args, state_, control, **kwargs):
            self.step_started = time.monotonic()

        def on_step_end(self, args, state_, control, **kwargs):
            step = state_.global_step
            self.last_step_seconds = time.monotonic() - self.step_started
            state["seconds"] += self.last_step_seconds
            if stop_file.exists() and step < state_.max_steps:
                control.should_save = True
                control.should_training_stop = True
                state["stopping"] = 1
            return control

        def on_epoch_end(self, args, state_, control, **kwargs):
            control.should_save = not state.get("stopping")
            return control

        def on_log(self, args, state_, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                report(
                    "step",
                    step=state_.global_step,
                    total_steps=state_.max_steps,
                    loss=float(logs["loss"]),
                    learning_rate=float(logs.get("learning_rate", 0.0)),
                    tokens=int(state["tokens"]),
                    seconds=state["seconds"],
                    step_seconds=self.last_step_seconds,
                )
            if "eval_loss" in logs:
                report("eval", step=state_.global_step, valid_loss=float(logs["eval_loss"]))

        def on_save(self, args, state_, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state_.global_step}"
            (folder / STATE_FILE).write_text(json.dumps(state))
            report("checkpoint", step=state_.global_step, folder=str(folder))

    return Progress()


def load_base(config: dict[str, Any]):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config["base_path"])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(config["base_path"], dtype=torch.float32)
    return tokenizer, model


def train(job_dir: Path) -> int:
    import torch
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    config = json.loads((job_dir / "config.json").read_text())
    set_seed(config["seed"])
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    tokenizer, base = load_base(config)
    max_length = config["max_length"]
    train_rows = [
        tokenize(tokenizer, e["messages"], max_length)
        for e in read_examples(job_dir / "train.jsonl")
    ]
    valid_path = job_dir / "valid.jsonl"
    valid_rows = (
        [tokenize(tokenizer, e["messages"], max_length) for e in read_examples(valid_path)]
        if valid_path.exists()
        else None
    )
    model = get_peft_model(base, lora_config())
    output_dir = job_dir / "trainer"
    batch_size = config["batch_size"]
    steps_per_epoch = math.ceil(len(train_rows) / batch_size)
    args = TrainingArguments(
        output_dir=str(output_dir),
        use_cpu=not torch.cuda.is_available(),
        num_train_epochs=config["n_epochs"],
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=config["learning_rate"],
        lr_scheduler_type="linear",
        warmup_steps=0,
        seed=config["seed"],
        data_seed=config["seed"],
        save_strategy="steps",
        save_steps=config["checkpoint_steps"],
        eval_strategy="epoch" if valid_rows else "no",
        logging_steps=1,
        report_to=[],
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    resume = latest_checkpoint(output_dir)
    state = {"tokens": 0.0, "seconds": 0.0}
    if resume is not None and (resume / STATE_FILE).exists():
        state.update(json.loads((resume / STATE_FILE).read_text()))
        state.pop("stopping", None)
    trainer = counting_trainer(Trainer, state)(
        model=model,
        args=args,
        train_dataset=train_rows,
        eval_dataset=valid_rows,
        data_collator=Collator(tokenizer.pad_token_id),
        callbacks=[make_callback(job_dir, state)],
    )
    resumed_from = checkpoint_step(resume) if resume else None
    if resume is not None:
        # a worker killed after the checkpoint was written, before it recorded the report,
        # has not seen it: reported again (recording it is idempotent)
        report("checkpoint", step=resumed_from, folder=str(resume), loss=checkpoint_loss(resume))
    report(
        "started",
        total_steps=steps_per_epoch * config["n_epochs"],
        examples=len(train_rows),
        resumed_from=resumed_from,
        threads=torch.get_num_threads(),
    )
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.monotonic() - started  # wall time of Trainer.train, checkpoints included
    if state.get("stopping"):
        report("stopped", step=trainer.state.global_step)
        return 0
    adapter = job_dir / "adapter"
    model.save_pretrained(str(adapter))
    report(
        "trained",
        step=trainer.state.global_step,
        tokens=int(state["tokens"]),
        train_seconds=train_seconds,
    )
    return merge(job_dir, adapter, Path(config["output_folder"]))


def merge(job_dir: Path, adapter: Path, output: Path) -> int:
    """The adapter merged into a full model folder, written beside and renamed into place.

    The folder holds the merged weights, the tokenizer, the generation config and chat
    template, and the adapter itself (``adapter/``). A failure (a full disk) leaves nothing
    at ``output``.
    """
    from peft import PeftModel

    config = json.loads((job_dir / "config.json").read_text())
    partial = output.parent / f".{output.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        tokenizer, base = load_base(config)
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
        partial.mkdir(parents=True)
        merged.save_pretrained(str(partial), safe_serialization=True)
        tokenizer.save_pretrained(str(partial))
        for name in ("generation_config.json", "chat_template.jinja"):
            source = Path(config["base_path"]) / name
            if source.exists() and not (partial / name).exists():
                shutil.copy2(source, partial / name)
        shutil.copytree(adapter, partial / "adapter")
        _fsync_tree(partial)
        if output.exists():  # a merge interrupted after the rename: the folder is complete
            shutil.rmtree(partial)
        else:
            os.rename(partial, output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report("merged", folder=str(output))
    return 0


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def main(argv: list[str]) -> int:
    job_dir, mode = Path(argv[1]), argv[2]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if os.environ.get("FINETUNE_PARENT_PID"):
        die_with_parent(int(os.environ["FINETUNE_PARENT_PID"]))
    if mode == "train":
        return train(job_dir)
    if mode == "merge":  # a checkpoint registered on request: argv[3] its folder, argv[4] output
        return merge(job_dir, Path(argv[3]), Path(argv[4]))
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
