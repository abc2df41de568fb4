"""Loading and stopping the real engine in one process: seconds of ``ensure_loaded`` and of
``shutdown`` (what every swap and every fine-tuning job pays before the next load), per run.

Uses the embedded default model (converted on first use). Run it under the engine lock when
other engine work may run on the machine. Usage:

    flock /tmp/engine.lock .venv/bin/python bench/engine_stop.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _cluster  # noqa: E402
from bench._cluster import spread  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    env = _cluster.bench_env(BATCHSERVER_ENGINE="vllm")
    _cluster.ensure_database(env["DATABASE_URL"])
    _cluster.prepare(env)
    _cluster.manage("setup_default_model", env=env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")
    import django

    django.setup()
    from jobs.runner import model_spec
    from jobs.worker.engine.manager import get_engine
    from models_registry import builtin
    from models_registry.models import Model

    spec = model_spec(Model.objects.get(name=builtin.DEFAULT_NAME))
    engine = get_engine()
    loads, stops = [], []
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        engine.ensure_loaded(spec)
        loads.append(time.monotonic() - started)
        started = time.monotonic()
        engine.shutdown()
        stops.append(time.monotonic() - started)
        print(f"run {run}: load {loads[-1]:.1f} s, stop {stops[-1]:.1f} s", flush=True)

    print(f"\n{spec.name}, {args.runs} runs: median (min, max)")
    print(f"  load seconds: {spread(loads)}")
    print(f"  stop seconds: {spread(stops)}")


if __name__ == "__main__":
    main()
