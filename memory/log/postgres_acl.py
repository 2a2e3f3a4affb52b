"""PostgreSQL principals, grants and API keys: the ACL tables (a mixin of ``PostgresLog``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

T = TypeVar("T")


class PostgresACL:
    """The principals, grants and keys of ``PostgresLog``."""

    if TYPE_CHECKING:

        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        def _write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T: ...

    def acl_grants(self) -> list[tuple[str, str, str]]:
        found = self._read(
            "SELECT principal, prefix, permission FROM grants ORDER BY principal, prefix"
        )
        return [(p, pre, perm) for p, pre, perm in found]

    @staticmethod
    def _add_principal(con: psycopg.Connection[Any], principal: str, now: float) -> None:
        con.execute(
            "INSERT INTO principals VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (principal, now),
        )

    def acl_set_grant(self, principal: str, prefix: str, permission: str | None) -> None:
        def run(con: psycopg.Connection[Any]) -> None:
            with con.transaction():
                self._add_principal(con, principal, time.time())
                if permission is None:
                    con.execute(
                        "DELETE FROM grants WHERE principal = %s AND prefix = %s",
                        (principal, prefix),
                    )
                else:
                    con.execute(
                        "INSERT INTO grants VALUES (%s, %s, %s) ON CONFLICT (principal, prefix) "
                        "DO UPDATE SET permission = excluded.permission",
                        (principal, prefix, permission),
                    )

        self._write(run)

    def acl_principals(self) -> list[str]:
        return [r[0] for r in self._read("SELECT name FROM principals ORDER BY name")]

    def acl_add_principal(self, principal: str) -> None:
        self._write(lambda con: self._add_principal(con, principal, time.time()))

    def acl_add_key(self, key_id: str, principal: str, digest: str) -> float:
        now = time.time()

        def run(con: psycopg.Connection[Any]) -> None:
            with con.transaction():
                self._add_principal(con, principal, now)
                con.execute(
                    "INSERT INTO api_keys VALUES (%s, %s, %s, %s, NULL)",
                    (key_id, principal, digest, now),
                )

        self._write(run)
        return now

    def acl_revoke_key(self, key_id: str) -> bool:
        def run(con: psycopg.Connection[Any]) -> bool:
            cur = con.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            return cur.rowcount > 0

        return self._write(run)

    def acl_keys(self) -> list[tuple[str, str, str, float, float | None]]:
        found = self._read(
            "SELECT id, principal, hash, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [tuple(r) for r in found]

    def acl_key(self, key_id: str) -> tuple[str, str, str, float, float | None] | None:
        found = self._read(
            "SELECT id, principal, hash, created_at, revoked_at FROM api_keys WHERE id = %s",
            (key_id,),
        )
        return tuple(found[0]) if found else None
