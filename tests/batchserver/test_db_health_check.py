"""The connection health check that costs no round trip (batchserver.db.postgresql)."""

import pytest
from django.db import connection, connections

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_connection():
    if connection.vendor != "postgresql":
        pytest.skip("the health check is PostgreSQL's")
    conn = connections.create_connection("default")
    conn.ensure_connection()
    yield conn
    conn.close()


def test_an_idle_connection_is_usable_without_a_query(second_connection, django_assert_num_queries):
    with django_assert_num_queries(0, connection=second_connection):
        assert second_connection.is_usable()


def test_a_connection_the_server_ended_is_not_usable(second_connection):
    # given a connection that the server terminated while it sat idle (as a restart does)
    pid = second_connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        # with a timeout it waits until the backend has exited (true) instead of only
        # signalling it: by then the backend has written its goodbye to the socket
        cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
        assert cursor.fetchone() == (True,)

    # then the health check notices, so the next request reconnects instead of failing
    assert not second_connection.is_usable()
    second_connection.close_if_unusable_or_obsolete()  # what Django does between requests
    with second_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
