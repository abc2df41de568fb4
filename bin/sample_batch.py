"""Submit a small batch with the official openai SDK and print what came back.

Usage: python bin/sample_batch.py BASE_URL API_KEY [MODEL]
"""

from __future__ import annotations

import json
import sys
import time

from openai import OpenAI

QUESTIONS = [
    "What is the capital of France?",
    "Give me three tips for writing clear code.",
    "Explain what a batch API is in one sentence.",
    "Write a haiku about GPUs.",
    "What is 12 times 12?",
    "Name a good name for a cat.",
]


def main(base_url: str, api_key: str, model: str) -> None:
    client = OpenAI(base_url=base_url, api_key=api_key)
    lines = [
        {
            "custom_id": f"q{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "max_tokens": 48,
                "temperature": 0,
                "seed": 1,
                "messages": [{"role": "user", "content": q}],
            },
        }
        for i, q in enumerate(QUESTIONS)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    upload = client.files.create(file=("sample.jsonl", content), purpose="batch")
    print(f"uploaded {upload.id} ({upload.bytes} bytes, {len(lines)} requests)")
    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"source": "bin/demo"},
    )
    print(f"created {batch.id}: {batch.status}")
    started = time.monotonic()
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(1)
        batch = client.batches.retrieve(batch.id)
        counts = batch.request_counts
        done = counts.completed + counts.failed if counts else 0
        print(
            f"  {time.monotonic() - started:5.1f}s {batch.status:<11} {done}/{len(lines)}",
            flush=True,
        )
    print(f"batch {batch.id} {batch.status}; usage: {batch.usage.total_tokens} tokens")
    if batch.errors and batch.errors.data:
        for error in batch.errors.data:
            print(f"  error line {error.line}: {error.code}: {error.message}")
    if batch.output_file_id:
        for raw in client.files.content(batch.output_file_id).text.splitlines():
            line = json.loads(raw)
            answer = line["response"]["body"]["choices"][0]["message"]["content"]
            question = QUESTIONS[int(line["custom_id"][1:])]
            print(f"\n> {question}\n{answer.strip()}")
    if batch.error_file_id:
        print("\nerror file:\n" + client.files.content(batch.error_file_id).text)
    if batch.status != "completed":
        sys.exit(1)


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        sys.argv[3] if len(sys.argv) > 3 else "HuggingFaceTB/SmolLM2-135M-Instruct",
    )
