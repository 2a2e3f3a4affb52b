"""Principals, grants and API keys, and the one permission check.

Deny by default. A grant gives ``read`` < ``propose`` < ``write`` < ``admin`` on a
namespace prefix (``propose``: read, and writes become proposals for review)
(segment-wise: ``team`` covers ``team`` and ``team/…``, never ``teammates``; ``""``
covers everything). Grants and keys are cached for at most ``ttl`` seconds, so a
revocation reaches every process sharing the store within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from typing import Any

from hivemem.memory.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from hivemem.memory.models import ApiKeyCreated, ApiKeyInfo, Grant, ts_to_datetime
from hivemem.memory.validation import check_prefix, in_scope

__all__ = ["ACL", "LEVELS", "check_principal"]

LEVELS = {"read": 1, "propose": 2, "write": 3, "admin": 4}
ADMIN = LEVELS["admin"]
_PRINCIPAL = re.compile(r"[A-Za-z0-9_.@\-]{1,128}")
_KEY = re.compile(r"hm_([0-9a-f]{16})_([A-Za-z0-9_\-]{20,})")


def check_principal(name: Any, field: str = "principal") -> str:
    """1–128 of letters, digits, ``_ . @ -``."""
    if not isinstance(name, str) or not _PRINCIPAL.fullmatch(name):
        raise InvalidInput(field, "must be 1-128 of letters, digits, '_', '.', '@', '-'")
    return name


def _digest(secret: str) -> str:
    # Keys carry 256 bits of randomness: a fast hash is enough (no password stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


class ACL:
    """Grant and key checks over a log's ACL tables, with a short-lived cache."""

    def __init__(self, store: Any, ttl: float = 0.5) -> None:
        self.store = store
        self.ttl = ttl
        self._lock = threading.Lock()
        self._grants: dict[str, list[tuple[str, int]]] = {}
        self._loaded = 0.0
        self._keys: dict[str, tuple[float, tuple[Any, ...] | None]] = {}

    # -- grants --------------------------------------------------------------------
    def _table(self) -> dict[str, list[tuple[str, int]]]:
        with self._lock:
            if time.monotonic() - self._loaded > self.ttl:
                table: dict[str, list[tuple[str, int]]] = {}
                for principal, prefix, permission in self.store.acl_grants():
                    table.setdefault(principal, []).append((prefix, LEVELS[permission]))
                self._grants = table
                self._loaded = time.monotonic()
            return self._grants

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = 0.0
            self._keys.clear()

    def level(self, principal: str, namespace: str) -> int:
        """The highest permission level ``principal`` holds on ``namespace``."""
        best = 0
        for prefix, lvl in self._table().get(principal, ()):
            if lvl > best and in_scope(namespace, prefix):
                best = lvl
        return best

    def readable_scopes(self, principal: str, prefix: str) -> list[str]:
        """The parts of ``prefix`` that ``principal`` may read, as prefixes."""
        grants = [p for p, lvl in self._table().get(principal, ()) if lvl >= 1]
        if any(in_scope(prefix, g) for g in grants):
            return [prefix]
        below = sorted({g for g in grants if in_scope(g, prefix)})
        return [g for g in below if not any(o != g and in_scope(g, o) for o in below)]

    def require(self, principal: str, namespace: str, permission: str) -> None:
        """Raise unless ``principal`` holds ``permission`` on ``namespace``.

        Not being able to read looks exactly like the item not existing.
        """
        have = self.level(principal, namespace)
        if have >= LEVELS[permission]:
            return
        if permission == "read":
            raise NotFound("no such item")
        raise PermissionDenied(f"{principal!r} may not {permission} in namespace {namespace!r}")

    def grants(self, principal: str | None = None) -> list[Grant]:
        table = self._table()
        names = [principal] if principal else sorted(table)
        inverse = {v: k for k, v in LEVELS.items()}
        return [
            Grant(principal=name, prefix=prefix, permission=inverse[lvl])  # type: ignore[arg-type]
            for name in names
            for prefix, lvl in sorted(table.get(name, ()))
        ]

    def set_grant(self, principal: str, prefix: str, permission: str | None) -> None:
        check_principal(principal)
        prefix = check_prefix(prefix)
        if permission is not None and permission not in LEVELS:
            raise InvalidInput("permission", "must be 'read', 'propose', 'write' or 'admin'")
        self.store.acl_set_grant(principal, prefix, permission)
        self.invalidate()

    # -- API keys ------------------------------------------------------------------
    def create_key(self, principal: str) -> ApiKeyCreated:
        check_principal(principal)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        created = self.store.acl_add_key(key_id, principal, _digest(secret))
        return ApiKeyCreated(
            id=key_id,
            principal=principal,
            secret=f"hm_{key_id}_{secret}",
            created_at=ts_to_datetime(created),  # type: ignore[arg-type]
        )

    def import_key(self, principal: str, token: str) -> str:
        """Register an operator-chosen key (e.g. ``HIVEMEM_ADMIN_KEY``); returns its id."""
        check_principal(principal)
        if not isinstance(token, str) or len(token) < 16:
            raise InvalidInput("api_key", "must be at least 16 characters")
        key_id, secret = self._split(token)
        self.store.acl_add_key(key_id, principal, _digest(secret))
        return key_id

    @staticmethod
    def _split(token: str) -> tuple[str, str]:
        match = _KEY.fullmatch(token)
        if match:
            return match.group(1), match.group(2)
        # A key of the operator's own choosing: its id is derived from it.
        return "x" + hashlib.sha256(token.encode()).hexdigest()[:15], token

    def revoke_key(self, key_id: str) -> None:
        if not self.store.acl_revoke_key(key_id):
            raise NotFound(f"no active API key {key_id!r}")
        self.invalidate()

    def keys(self, principal: str | None = None) -> list[ApiKeyInfo]:
        return [
            ApiKeyInfo(
                id=kid,
                principal=who,
                created_at=ts_to_datetime(created),  # type: ignore[arg-type]
                revoked_at=ts_to_datetime(revoked),
            )
            for kid, who, _, created, revoked in self.store.acl_keys()
            if principal is None or who == principal
        ]

    def authenticate(self, token: str | None) -> str:
        """The principal holding ``token``; ``Unauthenticated`` if unknown or revoked."""
        if not token:
            raise Unauthenticated("missing API key")
        key_id, secret = self._split(token)
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is None or now - cached[0] > self.ttl:
            cached = (now, self.store.acl_key(key_id))
            self._keys[key_id] = cached
        record = cached[1]
        expected = record[2] if record else _digest("")
        ok = hmac.compare_digest(_digest(secret), expected)
        if record is None or not ok or record[4] is not None:
            raise Unauthenticated("unknown or revoked API key")
        return str(record[1])
