"""Summarise py-spy collapsed stacks (``--profile`` of the benchmark scripts).

Prints, for the samples whose stack contains ``--match`` (default: a django-q2 worker running a
task; ``SyncWorker.handle`` for a gunicorn worker handling a request), the share of samples per
leaf function (self time) and per function anywhere on the stack (inclusive time), top ``--top``
each. Usage:

    .venv/bin/python bench/profile_summary.py /tmp/prof/worker-1.txt [--match TEXT]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Frames every sample of a django-q2 or gunicorn process goes through: left out of "inclusive".
BOOTSTRAP = (
    "(manage.py)",
    "(django/core/management/__init__.py)",
    "(django/core/management/base.py)",
    "(django_q/management/commands/qcluster.py)",
    "(django_q/cluster.py)",
    "(multiprocessing/process.py)",
    "(multiprocessing/popen_fork.py)",
    "(multiprocessing/context.py)",
)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]*)(?::\d+)?\)$")


def frames(stack: str) -> list[str]:
    out = []
    for part in stack.split(";"):
        match = FRAME.match(part)
        if match:
            file = match["file"].split("site-packages/")[-1]
            out.append(f"{match['func']} ({file})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--match", default="worker (django_q/worker.py")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own, inclusive = Counter(), Counter()
    total = 0
    for path in args.files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if args.match not in stack:
                continue
            n = int(count)
            calls = frames(stack)
            if not calls:
                continue
            total += n
            own[calls[-1]] += n
            for call in set(calls):
                if not call.endswith(BOOTSTRAP):
                    inclusive[call] += n
    print(f"{total} samples whose stack contains {args.match!r}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\ntop {args.top} by {title} time:")
        for call, n in counter.most_common(args.top):
            print(f"  {100 * n / total:5.1f}%  {call}")


if __name__ == "__main__":
    main()
