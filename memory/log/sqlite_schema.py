"""SQLite log schema: the DDL of each migration, applying them, and the column lists
and SQL fragments that the log's queries share."""

from __future__ import annotations

import sqlite3

from hivemem.memory.log.base import ITEM_OPS

TOKENIZER = "porter unicode61 remove_diacritics 2"

MIGRATIONS: list[str] = [
    # 1: the log, the current state, the keyword index, the ACL
    f"""
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE revisions (
        revision INTEGER PRIMARY KEY, author TEXT NOT NULL, time REAL NOT NULL,
        changes INTEGER NOT NULL);
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, op TEXT NOT NULL,
        namespace TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
        prev_version INTEGER, value TEXT, text TEXT, metadata TEXT, vector BLOB,
        author TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        expires_at REAL);
    CREATE INDEX changes_key ON changes (namespace, key, revision);
    CREATE INDEX changes_revision ON changes (revision);
    CREATE TABLE items (
        namespace TEXT NOT NULL, key TEXT NOT NULL, change_id INTEGER NOT NULL,
        version INTEGER NOT NULL, revision INTEGER NOT NULL, live INTEGER NOT NULL,
        expires_at REAL, PRIMARY KEY (namespace, key)) WITHOUT ROWID;
    CREATE UNIQUE INDEX items_change ON items (change_id);
    CREATE INDEX items_expiry ON items (expires_at) WHERE live = 1 AND expires_at IS NOT NULL;
    CREATE VIRTUAL TABLE fts USING fts5 (
        text, content='changes', content_rowid='id', tokenize='{TOKENIZER}');
    CREATE TABLE principals (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
    CREATE TABLE grants (
        principal TEXT NOT NULL, prefix TEXT NOT NULL, permission TEXT NOT NULL,
        PRIMARY KEY (principal, prefix));
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY, principal TEXT NOT NULL, hash TEXT NOT NULL,
        created_at REAL NOT NULL, revoked_at REAL);
    """,
    # 2: coordination: leases, task claims, and the log's coordination entries
    """
    ALTER TABLE changes ADD COLUMN lease TEXT;
    ALTER TABLE changes ADD COLUMN claim TEXT;
    ALTER TABLE changes ADD COLUMN info TEXT;
    ALTER TABLE items ADD COLUMN lease TEXT;
    ALTER TABLE items ADD COLUMN claim_lease TEXT;
    ALTER TABLE items ADD COLUMN queue_at REAL;
    CREATE INDEX items_lease ON items (lease) WHERE lease IS NOT NULL;
    CREATE INDEX items_claim_lease ON items (claim_lease) WHERE claim_lease IS NOT NULL;
    CREATE INDEX items_queue ON items (namespace, queue_at) WHERE queue_at IS NOT NULL;
    CREATE TABLE leases (
        id TEXT PRIMARY KEY, holder TEXT NOT NULL, ttl REAL NOT NULL, deadline REAL NOT NULL,
        revision INTEGER NOT NULL, ended_revision INTEGER);
    CREATE INDEX leases_due ON leases (deadline) WHERE ended_revision IS NULL;
    """,
    # 3: the operations of an update, delivered with its change
    "ALTER TABLE changes ADD COLUMN ops TEXT",
    # 4: threads; the keyword index leaves the write transaction for an engine view
    """
    ALTER TABLE changes ADD COLUMN thread TEXT;
    ALTER TABLE changes ADD COLUMN thread_pos INTEGER;
    DROP TABLE fts;
    """,
]

_ROW_COLS = (
    "c.id, c.revision, c.op, c.namespace, c.key, c.version, c.prev_version, c.value, "
    "c.text, c.metadata, c.vector, c.author, c.created_at, c.updated_at, c.expires_at, "
    "c.lease, c.claim, c.info, c.ops, c.thread, c.thread_pos"
)
_LEASE_COLS = "id, holder, ttl, deadline, revision, ended_revision"
_LIVE = "i.live = 1 AND (i.expires_at IS NULL OR i.expires_at > ?)"
# An expire is committed by the reaper: count it for the writer of the version it ended.
_EXPIRED_VERSION = (
    "LEFT JOIN changes p ON c.op = 'expire' AND p.namespace = c.namespace "
    "AND p.key = c.key AND p.version = c.prev_version"
)
_WHO = "CASE WHEN c.op = 'expire' THEN COALESCE(p.author, c.author) ELSE c.author END"
_ITEM_OP = "c.op IN (" + ", ".join(f"'{op}'" for op in sorted(ITEM_OPS)) + ")"


def migrate(con: sqlite3.Connection) -> None:
    """Apply the migrations the file lacks (``PRAGMA user_version`` counts those applied),
    in one transaction; the caller holds the write lock."""
    con.execute("BEGIN IMMEDIATE")
    try:
        have = con.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[have:], start=have + 1):
            for stmt in script.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            con.execute(f"PRAGMA user_version = {number}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
