"""Training tokens/s of a fine-tuning job vs a plain peft + Trainer script (issue #12).

Both sides train the same LoRA (r=8, alpha 16, all-linear) on the same chat examples with the
same hyperparameters, on the same machine, one after the other, alternating which goes first:

- **job**: ``python -m finetuning.trainer <folder> train``, exactly the process the worker runs
  for a job (its reports, step timing, checkpoints every ``--checkpoint-steps`` and at the
  epoch's end, then the merge, which is not timed);
- **plain**: this file with ``--plain``: tokenize with the chat template, ``get_peft_model``,
  ``Trainer.train()``, nothing else (no checkpoint, no callback).

Tokens/s = tokens trained (the attention mask of every batch) / wall time of training, from
the first step's start to the last step's end (``Trainer.train`` as a whole for plain; for the
job, from its ``started`` report to its ``trained`` report). The median of ``--runs`` runs of
each; the requirement is job ≥ 0.9 × plain.

    flock /tmp/engine.lock .venv/bin/python bench/finetune_efficiency.py --runs 3

Needs the converted SmolLM2 folder (``manage.py setup_default_model``) or ``--model <folder>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def examples(count: int) -> list[dict]:
    rows = []
    for i in range(count):
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": f"Give three facts about the number {i}."},
                    {
                        "role": "assistant",
                        "content": f"{i} is {'even' if i % 2 == 0 else 'odd'}; its square is "
                        f"{i * i}; twice it is {2 * i}.",
                    },
                ]
            }
        )
    return rows


def plain(folder: Path) -> dict:
    """The reference: a plain peft + Trainer script on the same data and hyperparameters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    config = json.loads((folder / "config.json").read_text())
    torch.manual_seed(config["seed"])
    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    tokenizer = AutoTokenizer.from_pretrained(config["base_path"])
    model = AutoModelForCausalLM.from_pretrained(config["base_path"], dtype=torch.float32)
    rows = []
    for line in (folder / "train.jsonl").read_text().splitlines():
        messages = json.loads(line)["messages"]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: config["max_length"]]
        rows.append({"input_ids": ids, "labels": list(ids)})
    model = get_peft_model(
        model,
        LoraConfig(
            task_type="CAUSAL_LM",
            r=8,
            lora_alpha=16,
            lora_dropout=0.05,
            target_modules="all-linear",
        ),
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tokens = [0]

    def collate(batch):
        width = max(len(r["input_ids"]) for r in batch)
        tokens[0] += sum(len(r["input_ids"]) for r in batch)
        return {
            "input_ids": torch.tensor(
                [r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in batch]
            ),
            "attention_mask": torch.tensor(
                [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in batch]
            ),
            "labels": torch.tensor(
                [r["labels"] + [-100] * (width - len(r["labels"])) for r in batch]
            ),
        }

    args = TrainingArguments(
        output_dir=str(folder / "plain-out"),
        use_cpu=not torch.cuda.is_available(),
        num_train_epochs=config["n_epochs"],
        per_device_train_batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        seed=config["seed"],
        save_strategy="no",
        logging_steps=1,
        report_to=[],
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    return {"tokens": tokens[0], "seconds": seconds}


def run_job(folder: Path) -> dict:
    """The job's own training process; timed from its 'started' to its 'trained' report."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "finetuning.trainer", str(folder), "train"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    started = trained = None
    tokens = 0
    assert process.stdout is not None
    for line in process.stdout:
        if not line.startswith("@@ft "):
            continue
        report = json.loads(line[5:])
        if report["event"] == "started":
            started = time.monotonic()
        elif report["event"] == "trained":
            trained, tokens = time.monotonic(), report["tokens"]
    if process.wait() != 0 or started is None or trained is None:
        raise SystemExit("the job's training process failed")
    return {"tokens": tokens, "seconds": trained - started}


def prepare(base: Path, args: argparse.Namespace, model: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ft-bench-", dir=base))
    (folder / "train.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in examples(args.examples))
    )
    config = {
        "base_path": model,
        "seed": 1,
        "max_length": 2048,
        "batch_size": args.batch_size,
        "n_epochs": args.epochs,
        "learning_rate": 2e-4,
        "checkpoint_steps": args.checkpoint_steps,
        "output_folder": str(folder / "merged"),
        "threads": args.threads,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--checkpoint-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--model", default="")
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain(args.plain)))
        return
    model = args.model or _default_model()
    figures: dict[str, list[float]] = {"job": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as base:
        for run in range(args.runs):
            order = ["job", "plain"] if run % 2 == 0 else ["plain", "job"]
            for side in order:
                folder = prepare(Path(base), args, model)
                if side == "job":
                    result = run_job(folder)
                else:
                    out = subprocess.run(
                        [sys.executable, __file__, "--plain", str(folder)],
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                rate = result["tokens"] / result["seconds"]
                figures[side].append(rate)
                print(
                    f"run {run + 1} {side:5s}: {result['tokens']} tokens in "
                    f"{result['seconds']:.1f} s = {rate:.0f} tokens/s",
                    flush=True,
                )
    job, reference = statistics.median(figures["job"]), statistics.median(figures["plain"])
    print(
        json.dumps(
            {
                "job_tokens_per_s": round(job, 1),
                "plain_tokens_per_s": round(reference, 1),
                "ratio": round(job / reference, 3),
                "runs": args.runs,
                "examples": args.examples,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "cpus": os.cpu_count(),
            }
        )
    )


def _default_model() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")
    import django

    django.setup()
    from models_registry import builtin

    return builtin.resolve_path(builtin.BUILTIN_PATH)


if __name__ == "__main__":
    main()
