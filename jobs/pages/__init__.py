"""Operator pages inside the admin: live queue, job history with charts, workers, one batch."""
