"""What other apps, the API, the pages and the command call: datasets, prices, runs.

``create_dataset_from_file(file_id, name)`` turns a stored JSONL file (a curation gold set) into
a dataset; ``start_run`` / ``cancel_run`` / ``advance_run`` drive runs; ``set_gpu_price`` and
``set_cloud_price`` change the prices that costs are computed from. Reads for pages and APIs
are in ``benchmarks.selectors``; scorers (and the extension point for plugins) in
``benchmarks.scorers``.
"""

from benchmarks.services.datasets import (
    create_dataset,
    create_dataset_from_file,
    create_dataset_from_upload,
    delete_dataset,
    ensure_builtin_datasets,
    get_dataset,
)
from benchmarks.services.prices import get_cloud_price, set_cloud_price, set_gpu_price
from benchmarks.services.results import compute_result
from benchmarks.services.runs import (
    advance_run,
    cancel_run,
    get_run,
    run_batch_ids,
    start_run,
)

__all__ = [
    "advance_run",
    "cancel_run",
    "compute_result",
    "create_dataset",
    "create_dataset_from_file",
    "create_dataset_from_upload",
    "delete_dataset",
    "ensure_builtin_datasets",
    "get_cloud_price",
    "get_dataset",
    "get_run",
    "run_batch_ids",
    "set_cloud_price",
    "set_gpu_price",
    "start_run",
]
