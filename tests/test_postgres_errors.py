"""PostgreSQL that cannot be used is one line naming the URL (never its password) and the reason:
a server that is down, a database without pgvector that this role may not add it to."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from conftest import free_port
from sekisho.audit import AuditError, AuditLog
from sekisho.cli import app
from sekisho.store import StoreError, open_store


def test_a_server_that_is_down_is_one_line_without_the_password(postgres_server):
    url = f"postgresql://sekisho:s3cret@127.0.0.1:{free_port()}/kb"
    with pytest.raises(StoreError) as raised:
        open_store(url)
    message = str(raised.value)
    assert message.startswith("postgresql://sekisho@127.0.0.1:") and "cannot connect to PostgreSQL" in message
    assert "s3cret" not in message and "\n" not in message
    with pytest.raises(AuditError, match="cannot connect to PostgreSQL"):
        AuditLog(url)
    result = CliRunner().invoke(app, ["search", "住民票"], env={"SEKISHO_STORE__URL": url})
    assert result.exit_code == 1 and result.output.startswith("error: postgresql://sekisho@127.0.0.1:")
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_a_database_without_pgvector_says_so(postgres_server):
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS novector")
        conn.execute("DROP ROLE IF EXISTS plain")
        conn.execute("CREATE ROLE plain LOGIN")
        conn.execute("CREATE DATABASE novector OWNER plain")
    url = postgres_server.replace("postgres:@/postgres?", "plain@/novector?")
    with pytest.raises(StoreError, match=r"plain@/novector.*pgvector is missing and cannot be created here "
                                         r"\(.*permission denied.*\); install pgvector"):
        open_store(url)
