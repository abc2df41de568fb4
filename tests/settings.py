"""Test settings: the fake engine, inline tasks and a private data folder.

Processes started by the end-to-end tests (web server, qcluster) use this module too; they get
``Q_SYNC=0`` and the database name from the environment.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("BATCHSERVER_ENGINE", "fake")
os.environ.setdefault("BATCHSERVER_DATA_DIR", str(Path(tempfile.gettempdir()) / "batchserver-test"))
os.environ.setdefault("Q_SYNC", "1")
os.environ.setdefault("DEBUG", "0")
# No warm start of the built-in model in started workers (it may need converting first); tests
# of the warm start name their model.
os.environ.setdefault("WORKER_DEFAULT_MODEL", "")

from batchserver.settings import *  # noqa: E402,F403
from batchserver.settings import DATA_DIR, DATABASES  # noqa: E402

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so that server and worker processes started by tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}

if os.environ.get("Q_SYNC") == "1":
    # The pytest process itself: its log lines reach the log store only when a test flushes
    # them (batchserver.logstore.flush); started servers and workers write them every second.
    LOG_STORE_FLUSH_SECONDS = 0.0
