"""Where a large input's validation goes, in one process: wall time, CPU of the worker's own
code and CPU of its PostgreSQL backend (read from ``/proc``; PostgreSQL on the same machine).

Runs ``validate_and_split`` inline (no web server, no qcluster) on a fresh batch over the same
file each run, on the fake engine's model. Usage:

    .venv/bin/python bench/validation_split.py [--lines 50000] [--megabytes 199] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench._cluster import spread  # noqa: E402
from bench.upload_validation import write_input  # noqa: E402


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of a local PostgreSQL backend; None when it is not local."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--megabytes", type=float, default=199.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    env = _cluster.fake_env()
    _cluster.ensure_database(env["DATABASE_URL"])
    _cluster.prepare(env)
    _cluster.register_fake_model(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")
    import django

    django.setup()
    from django.core.files import File as DjangoFile
    from django.db import connection
    from django.utils import timezone

    from batchserver.models import ApiKey
    from jobs.models import Batch
    from jobs.services import lifecycle
    from jobs.services.files import create_file

    source = Path(tempfile.mkdtemp(prefix="bench-validation-")) / "input.jsonl"
    size = write_input(source, args.lines, args.megabytes)
    owner = ApiKey.objects.filter(name="bench").first()
    walls, cpus, backends = [], [], []
    for run in range(1, args.runs + 1):
        with source.open("rb") as handle:
            file = create_file(
                owner, DjangoFile(handle, name=source.name), purpose="batch", filename=source.name
            )
        now = timezone.now()
        batch = Batch.objects.create(
            owner=owner,
            input_file=file,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            created_at=now,
            expires_at=now + timedelta(hours=24),
        )
        connection.ensure_connection()
        pid = connection.connection.info.backend_pid if connection.vendor == "postgresql" else 0
        backend_before = backend_cpu_seconds(pid) if pid else None
        wall, cpu = time.monotonic(), time.process_time()
        lifecycle.validate_and_split(batch)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        backend_after = backend_cpu_seconds(pid) if pid else None
        batch.refresh_from_db()
        if batch.status != "in_progress":
            raise RuntimeError(f"batch {batch.id} ended validation as {batch.status}")
        walls.append(wall)
        cpus.append(cpu)
        shown = "n/a (not a local PostgreSQL)"
        if backend_before is not None and backend_after is not None:
            backends.append(backend_after - backend_before)
            shown = f"{backends[-1]:.2f} s"
        print(
            f"run {run}: wall {wall:.2f} s, worker CPU {cpu:.2f} s, PostgreSQL backend CPU {shown}",
            flush=True,
        )

    print(f"\n{args.lines} lines, {size / _cluster.MB:.1f} MB, {args.runs} runs: median (min, max)")
    print(f"  wall seconds:                 {spread(walls, '{:.2f}')}")
    print(f"  worker CPU seconds:           {spread(cpus, '{:.2f}')}")
    if backends:
        print(f"  PostgreSQL backend CPU s:     {spread(backends, '{:.2f}')}")


if __name__ == "__main__":
    main()
