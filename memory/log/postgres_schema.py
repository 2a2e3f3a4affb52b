"""PostgreSQL log schema: the DDL of each migration, applying them under an advisory
lock, and the column lists and SQL fragments that the log's queries share."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from hivemem.memory.log.base import ITEM_OPS

#: First key of the two-key advisory locks; the second is a hash of the schema name.
_LOCK_COMMIT = 0x68_69_76_65  # "hive"
_LOCK_MIGRATE = 0x6D_69_67_72  # "migr"
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_C = 'TEXT COLLATE "C" NOT NULL'

MIGRATIONS: list[str] = [
    # 1: the log, the current state, the keyword index, the ACL
    f"""
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE revisions (
        revision BIGINT PRIMARY KEY, author TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
        changes INTEGER NOT NULL);
    CREATE TABLE changes (
        id BIGINT PRIMARY KEY, revision BIGINT NOT NULL, op TEXT NOT NULL,
        namespace {_C}, key {_C}, version BIGINT NOT NULL, prev_version BIGINT,
        value TEXT, text TEXT, metadata JSONB, vector BYTEA, author TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION);
    CREATE INDEX changes_key ON changes (namespace, key, revision);
    CREATE INDEX changes_revision ON changes (revision);
    CREATE TABLE items (
        namespace {_C}, key {_C}, change_id BIGINT NOT NULL, version BIGINT NOT NULL,
        revision BIGINT NOT NULL, live BOOLEAN NOT NULL, expires_at DOUBLE PRECISION,
        PRIMARY KEY (namespace, key));
    CREATE UNIQUE INDEX items_change ON items (change_id);
    CREATE INDEX items_expiry ON items (expires_at) WHERE live AND expires_at IS NOT NULL;
    CREATE TABLE fts (change_id BIGINT PRIMARY KEY, tsv TSVECTOR NOT NULL);
    CREATE INDEX fts_tsv ON fts USING GIN (tsv);
    CREATE TABLE principals (name TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE grants (
        principal TEXT NOT NULL, prefix TEXT NOT NULL, permission TEXT NOT NULL,
        PRIMARY KEY (principal, prefix));
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY, principal TEXT NOT NULL, hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION);
    """,
    # 2: coordination: leases, task claims, and the log's coordination entries
    f"""
    ALTER TABLE changes ADD COLUMN lease TEXT;
    ALTER TABLE changes ADD COLUMN claim TEXT;
    ALTER TABLE changes ADD COLUMN info TEXT;
    ALTER TABLE items ADD COLUMN lease TEXT;
    ALTER TABLE items ADD COLUMN claim_lease TEXT;
    ALTER TABLE items ADD COLUMN queue_at DOUBLE PRECISION;
    CREATE INDEX items_lease ON items (lease) WHERE lease IS NOT NULL;
    CREATE INDEX items_claim_lease ON items (claim_lease) WHERE claim_lease IS NOT NULL;
    CREATE INDEX items_queue ON items (namespace, queue_at) WHERE queue_at IS NOT NULL;
    CREATE TABLE leases (
        id {_C} PRIMARY KEY, holder TEXT NOT NULL, ttl DOUBLE PRECISION NOT NULL,
        deadline DOUBLE PRECISION NOT NULL, revision BIGINT NOT NULL, ended_revision BIGINT);
    CREATE INDEX leases_due ON leases (deadline) WHERE ended_revision IS NULL;
    """,
    # 3: the operations of an update, delivered with its change
    "ALTER TABLE changes ADD COLUMN ops TEXT",
    # 4: threads; the keyword index leaves the write transaction for an engine view
    """
    ALTER TABLE changes ADD COLUMN thread TEXT;
    ALTER TABLE changes ADD COLUMN thread_pos BIGINT;
    DROP TABLE fts;
    """,
]

_ROW_COLS = (
    "c.id, c.revision, c.op, c.namespace, c.key, c.version, c.prev_version, c.value, "
    "c.text, c.metadata::text, c.vector, c.author, c.created_at, c.updated_at, c.expires_at, "
    "c.lease, c.claim, c.info, c.ops, c.thread, c.thread_pos"
)
_LEASE_COLS = "id, holder, ttl, deadline, revision, ended_revision"
_LIVE = "i.live AND (i.expires_at IS NULL OR i.expires_at > %s)"
_ITEM_JOIN = "items i JOIN changes c ON c.id = i.change_id"
# An expire is committed by the reaper: count it for the writer of the version it ended.
_EXPIRED_VERSION = (
    "LEFT JOIN changes p ON c.op = 'expire' AND p.namespace = c.namespace "
    "AND p.key = c.key AND p.version = c.prev_version"
)
_WHO = "CASE WHEN c.op = 'expire' THEN COALESCE(p.author, c.author) ELSE c.author END"
_ITEM_OP = "c.op IN (" + ", ".join(f"'{op}'" for op in sorted(ITEM_OPS)) + ")"
_CHUNK = 1000


def migrate(con: psycopg.Connection[Any], schema: str, fresh: bool) -> None:
    """Create the schema (dropped first when ``fresh``) and apply the migrations it lacks,
    in one transaction under the migration lock; the caller holds the write lock."""
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_MIGRATE, schema))
        if fresh:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        r = con.execute("SELECT max(version) FROM schema_version").fetchone()
        have = (r[0] if r else None) or 0
        for number, script in enumerate(MIGRATIONS[have:], start=have + 1):
            for stmt in script.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            con.execute("DELETE FROM schema_version")
            con.execute("INSERT INTO schema_version VALUES (%s)", (number,))
