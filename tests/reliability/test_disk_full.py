"""A full disk while a batch's output files are written: nothing partial is published.

The batch stays ``finalizing`` with a note saying why, no File row and nothing in storage; the
next tick writes the files once there is room again, and the batch completes with every
custom_id exactly once. Three ways to fill the disk: a real tmpfs that is full (root only),
ENOSPC injected into the writes, and ENOSPC when the second of the two files is moved into
place (the first, already published, must be withdrawn). Tasks run inline.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from batchserver import storage as stored_files
from jobs import assembly, tasks
from jobs.models import Batch, File
from tests.conftest import request_line
from tests.reliability.conftest import check_exactly_once, record_figures

LINES = 300
FAILING = {7, 150, 299}  # these lines go to the error file, so that there are two files


def _lines() -> list[dict]:
    return [
        request_line(i, content=f"q {i} [[fail]]" if i in FAILING else f"q {i}")
        for i in range(LINES)
    ]


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FillingHandle:
    """A temporary file of the assembly on a disk that fills up after ``room`` characters."""

    def __init__(self, real, disk: SimpleNamespace) -> None:
        self._real, self._disk = real, disk

    @property
    def name(self) -> str:
        return self._real.name

    def write(self, text: str) -> int:
        if self._disk.full and self._disk.written + len(text) > self._disk.room:
            # as a real disk does: what fits is written, then the write fails
            fits = max(0, self._disk.room - self._disk.written)
            self._real.write(text[:fits])
            self._disk.written += fits
            raise _enospc()
        self._disk.written += len(text)
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()

    def close(self) -> None:
        self._real.close()


@pytest.fixture
def filling_disk(monkeypatch) -> SimpleNamespace:
    """ENOSPC from the assembly's writes while ``disk.full`` (after 4 kB got through)."""
    import tempfile

    disk = SimpleNamespace(full=True, room=4096, written=0)

    def named_temporary_file(*args, **kwargs):
        return _FillingHandle(tempfile.NamedTemporaryFile(*args, **kwargs), disk)

    monkeypatch.setattr(
        assembly, "tempfile", SimpleNamespace(NamedTemporaryFile=named_temporary_file)
    )
    return disk


def _published_nothing(batch: Batch, media_root: Path, tmp_dir: Path) -> None:
    """No File row, nothing in storage and no temporary file left for this batch."""
    assert not File.objects.filter(purpose="batch_output").exists()
    stored = [p.name for p in (media_root / "files").rglob("*") if p.is_file()]
    assert len(stored) == 1, stored  # only the input file
    assert not [p for p in tmp_dir.rglob(f".{batch.id}_*")], "temporary files left behind"


def _assert_resumes_and_completes(batch: Batch, client_api, room_again) -> dict[str, int]:
    # while the disk is still full, the tick does not publish anything either
    tasks.tick()
    batch.refresh_from_db()
    assert batch.status == "finalizing"
    # once there is room again, the next tick finishes the batch
    room_again()
    tasks.tick()
    batch.refresh_from_db()
    assert batch.status == "completed", batch.note
    assert batch.request_completed == LINES - len(FAILING)
    assert batch.request_failed == len(FAILING)
    assert batch.note.startswith("written on a retry")
    texts = [
        b"".join(client_api.get(f"/v1/files/{file_id}/content").streaming_content).decode()
        for file_id in (batch.output_file_id, batch.error_file_id)
    ]
    return check_exactly_once(texts, {f"req-{i}" for i in range(LINES)})


def test_enospc_while_writing_publishes_nothing_and_resumes(
    create_batch, client_api, filling_disk, settings
):
    # given a disk that fills up while the output file is being written
    # when a batch runs to its end
    created = create_batch(_lines())

    # then it stays finalizing, says why, and nothing of its files is published
    batch = Batch.objects.get(pk=created["id"])
    assert batch.status == "finalizing"
    assert batch.note.startswith(Batch.FINALIZE_FAILED_NOTE) and "No space left" in batch.note
    assert filling_disk.written > 0  # part of a file had been written when the disk filled
    _published_nothing(batch, Path(settings.MEDIA_ROOT), Path(settings.FILE_UPLOAD_TEMP_DIR))

    # and when space returns it completes, every custom_id exactly once
    figures = _assert_resumes_and_completes(
        batch, client_api, lambda: setattr(filling_disk, "full", False)
    )
    record_figures("disk_full_injected_write", {**figures, "published_while_full": 0})


def test_enospc_while_publishing_the_second_file_withdraws_the_first(
    create_batch, client_api, monkeypatch, settings
):
    # given a disk with room for the output file but not for the error file's folder
    full = {"yes": True}
    made: list[str] = []

    def makedirs(path, *args, **kwargs):
        made.append(path)
        if full["yes"] and len(made) > 1:  # output first, then error
            raise _enospc()
        return os.makedirs(path, *args, **kwargs)

    class _Os(SimpleNamespace):
        def __getattr__(self, name):
            return getattr(os, name)

    # publishing (batchserver.storage.publish) makes the folder, then moves the file into it
    monkeypatch.setattr(stored_files, "os", _Os(makedirs=makedirs, path=os.path))

    # when the batch runs to its end
    created = create_batch(_lines())

    # then the output file that was already in place is withdrawn: no row, nothing stored
    batch = Batch.objects.get(pk=created["id"])
    assert batch.status == "finalizing"
    assert "No space left" in batch.note
    _published_nothing(batch, Path(settings.MEDIA_ROOT), Path(settings.FILE_UPLOAD_TEMP_DIR))

    figures = _assert_resumes_and_completes(
        batch, client_api, lambda: full.__setitem__("yes", False)
    )
    record_figures("disk_full_injected_publish", {**figures, "published_while_full": 0})


@pytest.fixture
def small_tmpfs(tmp_path, settings):
    """A 1 MB tmpfs as the data folder's files and temporary files (needs root and mount)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        (mount / "files").mkdir()
        (mount / "tmp").mkdir()
        settings.MEDIA_ROOT = str(mount / "files")
        settings.FILE_UPLOAD_TEMP_DIR = str(mount / "tmp")
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    filler = mount / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while handle.write(b"\0" * 65536):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_really_full_disk_publishes_nothing_and_resumes(
    small_tmpfs, upload, client_api, model, django_capture_on_commit_callbacks, settings
):
    # given the input uploaded, and then a disk filled to the last byte
    file = upload(b"".join(_line_bytes(line) for line in _lines()))
    filler = _fill(small_tmpfs)

    # when a batch runs to its end
    with django_capture_on_commit_callbacks(execute=True):
        response = client_api.post(
            "/v1/batches",
            {
                "input_file_id": file["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            format="json",
        )
    assert response.status_code == 200, response.content

    # then it stays finalizing and nothing of its files is published
    batch = Batch.objects.get(pk=response.json()["id"])
    assert batch.status == "finalizing"
    assert "No space left" in batch.note
    _published_nothing(batch, small_tmpfs / "files", small_tmpfs / "tmp")

    # and when space returns it completes, every custom_id exactly once
    figures = _assert_resumes_and_completes(batch, client_api, filler.unlink)
    record_figures("disk_full_tmpfs", {**figures, "published_while_full": 0})


def _line_bytes(line: dict) -> bytes:
    import json

    return (json.dumps(line) + "\n").encode()
