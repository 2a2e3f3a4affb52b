"""SQLite principals, grants and API keys: the ACL tables (a mixin of ``SQLiteLog``)."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING


class SQLiteACL:
    """The principals, grants and keys of ``SQLiteLog``."""

    if TYPE_CHECKING:
        _w: sqlite3.Connection
        _wlock: threading.RLock

        def _r(self) -> sqlite3.Connection: ...

    def acl_grants(self) -> list[tuple[str, str, str]]:
        return list(self._r().execute("SELECT principal, prefix, permission FROM grants"))

    def acl_set_grant(self, principal: str, prefix: str, permission: str | None) -> None:
        with self._wlock:
            con = self._w
            con.execute("INSERT OR IGNORE INTO principals VALUES (?, ?)", (principal, time.time()))
            if permission is None:
                con.execute(
                    "DELETE FROM grants WHERE principal = ? AND prefix = ?", (principal, prefix)
                )
            else:
                con.execute(
                    "INSERT INTO grants VALUES (?, ?, ?) ON CONFLICT (principal, prefix) "
                    "DO UPDATE SET permission = excluded.permission",
                    (principal, prefix, permission),
                )

    def acl_principals(self) -> list[str]:
        return [r[0] for r in self._r().execute("SELECT name FROM principals ORDER BY name")]

    def acl_add_principal(self, principal: str) -> None:
        with self._wlock:
            self._w.execute(
                "INSERT OR IGNORE INTO principals VALUES (?, ?)", (principal, time.time())
            )

    def acl_add_key(self, key_id: str, principal: str, digest: str) -> float:
        now = time.time()
        with self._wlock:
            self._w.execute("INSERT OR IGNORE INTO principals VALUES (?, ?)", (principal, now))
            self._w.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)", (key_id, principal, digest, now)
            )
        return now

    def acl_revoke_key(self, key_id: str) -> bool:
        with self._wlock:
            cur = self._w.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        return cur.rowcount > 0

    def acl_keys(self) -> list[tuple[str, str, str, float, float | None]]:
        return list(
            self._r().execute(
                "SELECT id, principal, hash, created_at, revoked_at FROM api_keys "
                "ORDER BY created_at"
            )
        )

    def acl_key(self, key_id: str) -> tuple[str, str, str, float, float | None] | None:
        r = (
            self._r()
            .execute(
                "SELECT id, principal, hash, created_at, revoked_at FROM api_keys WHERE id = ?",
                (key_id,),
            )
            .fetchone()
        )
        return tuple(r) if r else None
