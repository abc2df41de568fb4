"""A django-q2 task the cross-process test sends to a real worker: which plugins rate there?"""

from __future__ import annotations

import os

from plugins import services


def rating_plugins() -> dict:
    """The ids of the plugins whose scores the worker gets now, and the worker's pid."""
    return {"plugins": sorted({s.plugin for s in services.rate("probe")}), "pid": os.getpid()}
