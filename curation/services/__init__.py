"""What the API, the pages, the tasks and other apps call: datasets, review, bulk, exports.

Reads for pages (progress, analytics) are in ``curation.selectors``; "which records does this
filter select" in ``curation.filters``.
"""

from curation.services.bulk import ACTIONS, bulk_action
from curation.services.datasets import (
    add_batches,
    add_selection,
    check_merge,
    check_split,
    create_dataset,
    create_dataset_from_batches,
    create_dataset_from_run,
    create_dataset_from_upload,
    dedupe_dataset,
    delete_dataset,
    get_dataset,
    import_batches,
    mark_deleted_batches,
    merge_datasets,
    split_dataset,
)
from curation.services.exports import (
    ExportResult,
    available_formats,
    check_export,
    export_dataset,
)
from curation.services.operations import (
    OPERATIONS,
    merge_here,
    run_here,
    run_operation,
    start_dedupe,
    start_export,
    start_merge,
    start_split,
)
from curation.services.review import StaleRecord, get_record, review_record
from curation.services.scoring import score_dataset, start_scoring

__all__ = [
    "ACTIONS",
    "OPERATIONS",
    "ExportResult",
    "StaleRecord",
    "add_batches",
    "add_selection",
    "available_formats",
    "bulk_action",
    "check_export",
    "check_merge",
    "check_split",
    "create_dataset",
    "create_dataset_from_batches",
    "create_dataset_from_run",
    "create_dataset_from_upload",
    "dedupe_dataset",
    "delete_dataset",
    "export_dataset",
    "get_dataset",
    "get_record",
    "import_batches",
    "mark_deleted_batches",
    "merge_datasets",
    "merge_here",
    "review_record",
    "run_here",
    "run_operation",
    "score_dataset",
    "split_dataset",
    "start_dedupe",
    "start_export",
    "start_merge",
    "start_scoring",
    "start_split",
]
