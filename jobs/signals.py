"""Batch lifecycle signals: webhooks, metrics and plugins subscribe; nothing polls.

``batch_status_changed(batch, old, new)`` fires after every committed status change;
``batch_chunk_committed(batch_id, completed, failed)`` after each committed chunk.
"""

from django.dispatch import Signal

batch_status_changed = Signal()
batch_chunk_committed = Signal()
