"""The engine host's output reaches the log store as the engine's lines, tagged with the batch."""

from __future__ import annotations

import json
import logging
import os

import pytest

from batchserver import correlation, logstore
from batchserver.models import LogLine
from jobs.worker.engine.base import EngineError, EngineRequest, ModelSpec
from jobs.worker.engine.host import HostedBackend, group_members
from jobs.worker.engine.output import OutputRelay, parse


def test_a_vllm_line_gives_its_level_and_where_it_was_written():
    line = parse("WARNING 12-02 05:10:11 [config.py:412] Casting torch.bfloat16 to float32.")

    assert line.level == logging.WARNING
    assert line.logger == "vllm"
    assert line.message == "[config.py:412] Casting torch.bfloat16 to float32."


def test_a_line_of_vllms_engine_core_names_its_process():
    line = parse("(EngineCore_DP0 pid=4242) INFO 12-02 05:10:11 [core.py:90] Initializing engine")

    assert (line.level, line.pid) == (logging.INFO, 4242)
    assert line.message == "[core.py:90] (EngineCore_DP0) Initializing engine"


def test_the_hosts_own_json_line_keeps_its_logger_and_correlation_id():
    text = json.dumps(
        {
            "time": "2026-12-02 05:10:11,123",
            "level": "ERROR",
            "logger": "jobs.worker.engine.host",
            "message": "engine host: run failed: boom",
            "correlation_id": "batch_1",
            "process": 77,
        }
    )

    line = parse(text)

    assert (line.level, line.logger, line.pid) == (logging.ERROR, "jobs.worker.engine.host", 77)
    assert (line.message, line.correlation_id) == ("engine host: run failed: boom", "batch_1")


def test_the_hosts_own_plain_line_is_understood():
    line = parse("2026-12-02 05:10:11,123 INFO jobs.worker.engine.host [-] engine host: running 3")

    assert (line.level, line.logger, line.correlation_id) == (
        logging.INFO,
        "jobs.worker.engine.host",
        "",
    )
    assert line.message == "engine host: running 3"


def test_json_that_is_not_a_log_record_is_kept_as_it_is():
    line = parse('{"not": "a record"}')

    assert (line.level, line.logger, line.message) == (
        logging.INFO,
        "engine.output",
        '{"not": "a record"}',
    )


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured():
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler.records
    root.removeHandler(handler)


def test_the_relay_reads_split_lines_tracebacks_and_progress_bars(captured):
    # given a pipe the relay reads, written in pieces that split lines anywhere
    read_end, write_end = os.pipe()
    relay = OutputRelay(read_end, host_pid=99)
    relay.correlation_id = "batch_7"
    relay.start()
    written = (
        b"INFO 12-02 05:10:11 [loader.py:1] Loading wei",
        b"ghts took 4.1 seconds\nTraceback (most recent call last):\n",
        b'  File "x.py", line 1, in <module>\nRuntimeError: out of memory\n',
        b"Loading: 10%\rLoading: 50%\rLoading: 100%\n\n",
        b"no newline at the end",
    )
    for piece in written:
        os.write(write_end, piece)

    # when the writer goes away
    os.close(write_end)
    relay.thread.join(5)

    # then each line is one record of the engine process, with the batch's id
    seen = [(r.levelno, r.name, r.getMessage()) for r in captured]
    assert seen == [
        (logging.INFO, "vllm", "[loader.py:1] Loading weights took 4.1 seconds"),
        (logging.ERROR, "engine.output", "Traceback (most recent call last):"),
        (logging.ERROR, "engine.output", '  File "x.py", line 1, in <module>'),
        (logging.ERROR, "engine.output", "RuntimeError: out of memory"),
        (logging.INFO, "engine.output", "Loading: 100%"),
        (logging.INFO, "engine.output", "no newline at the end"),
    ]
    assert {(r.process_kind, r.process, r.correlation_id) for r in captured} == {
        ("engine", 99, "batch_7")
    }


def test_the_relay_keeps_the_exceptions_of_tracebacks_the_root_cause_first(captured):
    # given the output of vLLM's engine core failing to load a model
    read_end, write_end = os.pipe()
    relay = OutputRelay(read_end, host_pid=99).start()
    os.write(
        write_end,
        b"(Worker pid=6) ERROR 12-02 05:10:10 [multiproc_executor.py:9] (Worker) Traceback:\n"
        b"(Worker pid=6) ERROR 12-02 05:10:10 [multiproc_executor.py:9] (Worker) "
        b"safetensors.SafetensorError: Error while deserializing header\n"
        b"(EngineCore pid=5) ERROR 12-02 05:10:11 [core.py:1] EngineCore failed to start.\n"
        b"(EngineCore pid=5) Traceback (most recent call last):\n"
        b'(EngineCore pid=5)   File "loader.py", line 9, in load\n'
        b"(EngineCore pid=5) SafetensorError: incomplete metadata\n"
        b"INFO 12-02 05:10:12 [x.py:2] shutting down\n"
        b"Traceback (most recent call last):\n"
        b"RuntimeError: Engine core initialization failed. See root cause above.\n",
    )

    # when the output ends
    os.close(write_end)
    relay.thread.join(5)

    # then tracebacks are at ERROR and their exception lines are kept, the root cause first
    assert relay.exceptions == [
        "safetensors.SafetensorError: Error while deserializing header",
        "SafetensorError: incomplete metadata",
        "RuntimeError: Engine core initialization failed. See root cause above.",
    ]
    levels = [r.levelno for r in captured]
    assert levels == [logging.ERROR] * 6 + [logging.INFO] + [logging.ERROR] * 2


@pytest.mark.django_db
def test_a_hosted_engines_lines_are_stored_as_the_engines_with_the_batch_id(settings):
    # given a hosted (fake) engine whose host logs in the worker's format
    settings.LOG_FORMAT = "json"
    logstore.discard()
    backend = HostedBackend("fake")
    try:
        # when it loads and runs requests for a batch, the second run failing like a crash
        with correlation.bind("batch_abc"):
            backend.load(ModelSpec(name="fake-model"))
            backend.run([EngineRequest("c1", "/v1/chat/completions", {"messages": []})])
            with pytest.raises(EngineError, match="crash"):
                backend.run([EngineRequest("c2", "/v1/chat/completions", {"prompt": "[[crash]]"})])
    finally:
        pgid = backend.pgid
        backend.shutdown()
    assert pgid and group_members(pgid) == []
    logstore.flush()

    # then its lines are in the log store, as the engine's, with the batch's correlation id
    lines = LogLine.objects.filter(process="engine", correlation_id="batch_abc")
    messages = {(x.level, x.message) for x in lines}
    assert ("INFO", "engine host: running 1 requests") in messages
    assert any(
        level == "WARNING" and "run failed" in text and "crash" in text for level, text in messages
    )
    assert all(x.pid != os.getpid() for x in lines)
    # and the log page's filter offers the engine
    assert LogLine.objects.matching(process="engine").count() == lines.count()
