"""Training tokens/s of a fine-tuning job vs a plain peft + Trainer script (issue #12).

Both sides train the same LoRA (r=8, alpha 16, all-linear) on the same chat examples with the
same hyperparameters, on the same machine, one after the other, alternating which goes first:

- **job**: ``python -m finetuning.trainer <folder> train``, exactly the process the worker runs
  for a job (its reports, step timing, checkpoints every ``--checkpoint-steps`` and at the
  epoch's end, then the adapter save and the merge, which are not training);
- **plain**: this file with ``--plain``: tokenize with the chat template, ``get_peft_model``,
  ``Trainer.train()``, nothing else (no checkpoint, no report).

Both sides are timed the same way, inside their own process: tokens/s = tokens trained (the
attention mask of every batch) / wall time of ``Trainer.train()`` (the job's checkpoints are
inside it: they are part of the contract). Each step is timed by the same callback on both
sides (``on_step_begin`` to ``on_step_end``), so the first step is seen apart from the others;
"setup" is the time from starting the process to ``Trainer.train()`` (imports, model load,
tokenization). The median of ``--runs`` runs of each; the requirement is job ≥ 0.9 × plain.
Beside each run: the 1-minute load average at its start (it includes the previous run) and the
CPU that other processes used while it ran (the machine's busy time minus this run's own), in
cores.

    flock /tmp/engine.lock .venv/bin/python bench/finetune_efficiency.py --runs 3 --examples 96

``--profile DIR`` adds one unmeasured run of each side under py-spy (collapsed stacks in DIR,
summarised with ``bench/profile_summary.py --match training_step``). Needs the converted
SmolLM2 folder (``manage.py setup_default_model``) or ``--model <folder>``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import _cluster  # noqa: E402


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
    times = step_times()
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[times]
    )
    print(MARK + json.dumps({"event": "started", "threads": torch.get_num_threads()}), flush=True)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    return {"tokens": tokens[0], "train_seconds": seconds, "step_seconds": times.seconds}


def step_times():
    """A callback that times each step as the job's does (``on_step_begin`` to ``on_step_end``)."""
    from transformers import TrainerCallback

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.begun = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.begun = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.monotonic() - self.begun)

    return StepTimes()


MARK = "@@ft "  # the job's report prefix (finetuning.trainer.MARK); the plain side uses it too


def run_side(side: str, folder: Path, profile: Path | None = None) -> dict:
    """Run one side in its own process and read its reports.

    Both sides print a ``started`` report just before ``Trainer.train()`` and their figures at
    its end (the job: ``step`` and ``trained`` reports; plain: one JSON line).
    """
    if side == "job":
        command = [sys.executable, "-m", "finetuning.trainer", str(folder), "train"]
    else:
        command = [sys.executable, __file__, "--plain", str(folder)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    busy, own = busy_seconds(), children_cpu_seconds()
    launched = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    profiler = _cluster.Profiler(process.pid, profile) if profile else None
    result: dict = {"step_seconds": []}
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith(MARK):
                report = json.loads(line[len(MARK) :])
                if report["event"] == "started":
                    result["setup_seconds"] = time.monotonic() - launched
                    result["threads"] = report.get("threads")
                elif report["event"] == "step":
                    result["step_seconds"].append(report["step_seconds"])
                elif report["event"] == "trained":
                    result.update(tokens=report["tokens"], train_seconds=report["train_seconds"])
            elif side == "plain" and line.startswith('{"tokens"'):
                result.update(json.loads(line))  # (the Trainer prints its logs as dicts too)
    finally:
        if profiler:
            profiler.stop()
    if process.wait() != 0 or "train_seconds" not in result:
        raise SystemExit(f"the {side} side's training process failed")
    wall = time.monotonic() - launched
    others = (busy_seconds() - busy) - (children_cpu_seconds() - own)
    result["others_cores"] = max(0.0, others / wall)  # what other processes used meanwhile
    return result


def busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent busy so far (everything but idle and iowait)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
    parser.add_argument("--profile", type=Path, help="py-spy one extra run of each side here")
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain(args.plain)))
        return
    model = args.model or _default_model()
    figures: dict[str, list[dict]] = {"job": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as base:
        for run in range(args.runs):
            order = ["job", "plain"] if run % 2 == 0 else ["plain", "job"]
            for side in order:
                load = os.getloadavg()[0]
                result = run_side(side, prepare(Path(base), args, model))
                result["load"] = load
                figures[side].append(result)
                print(f"run {run + 1} {describe(side, result)}", flush=True)
        if args.profile:
            profile(args, Path(base), model)
    summary = {
        side: {
            "tokens_per_s": round(statistics.median(rate(r) for r in runs), 1),
            "first_step_s": round(statistics.median(r["step_seconds"][0] for r in runs), 2),
            "later_step_s": round(statistics.median(later_steps(r) for r in runs), 2),
            "setup_s": round(statistics.median(r["setup_seconds"] for r in runs), 1),
            "others_cores": round(statistics.median(r["others_cores"] for r in runs), 2),
        }
        for side, runs in figures.items()
    }
    ratio = summary["job"]["tokens_per_s"] / summary["plain"]["tokens_per_s"]
    print(
        json.dumps(
            {
                **summary,
                "ratio": round(ratio, 3),
                "runs": args.runs,
                "examples": args.examples,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "checkpoint_steps": args.checkpoint_steps,
                "cpus": os.cpu_count(),
            }
        )
    )


def rate(result: dict) -> float:
    return result["tokens"] / result["train_seconds"]


def later_steps(result: dict) -> float:
    steps = result["step_seconds"][1:] or result["step_seconds"]
    return statistics.median(steps)


def describe(side: str, result: dict) -> str:
    steps = result["step_seconds"]
    return (
        f"{side:5s}: {result['tokens']} tokens in {result['train_seconds']:.1f} s = "
        f"{rate(result):.0f} tokens/s; {len(steps)} steps, first {steps[0]:.2f} s, later "
        f"median {later_steps(result):.2f} s; setup {result['setup_seconds']:.1f} s; "
        f"{result['threads']} threads; load average {result['load']:.2f}, other processes "
        f"{result['others_cores']:.2f} cores"
    )


def profile(args: argparse.Namespace, base: Path, model: str) -> None:
    """One unmeasured run of each side under py-spy, summarised by where the steps go."""
    args.profile.mkdir(parents=True, exist_ok=True)
    for side in ("job", "plain"):
        out = args.profile / f"{side}.txt"
        load = os.getloadavg()[0]
        result = run_side(side, prepare(base, args, model), profile=out)
        print(f"profiled {describe(side, {**result, 'load': load})}", flush=True)
        for match in ("(trainer.py)", "training_step"):
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "profile_summary.py"), str(out)]
                + ["--match", match, "--top", "15"],
                check=False,
            )


def _default_model() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")
    import django

    django.setup()
    from models_registry import builtin

    return builtin.resolve_path(builtin.BUILTIN_PATH)


if __name__ == "__main__":
    main()
