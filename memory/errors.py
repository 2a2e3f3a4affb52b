"""The errors hivemem raises, embedded or remote.

Every error the engine raises is a ``HivememError``; each subclass maps to one HTTP
status and one RFC 9457 problem type, so the REST API renders them from one table and
the client turns a problem body back into the same class::

    HivememError                 500  internal (a bug if it ever reaches a caller)
    ├── InvalidInput             422  bad input; ``field`` names the offending part
    │   └── PayloadTooLarge      413  a value or body over the configured limit
    ├── NotFound                 404  absent, deleted, or not readable by the caller
    ├── Conflict                 409  stale version (``current``) or merge conflicts
    ├── PermissionDenied         403  readable but not writable, or not admin (also a
    │                                 builtin ``PermissionError``, for framework code)
    ├── Unauthenticated          401  no API key, or an unknown or revoked one
    ├── Compacted                410  the revision asked for was compacted away
    └── Unavailable              503  a backend is down or not caught up
        ├── Lagged               503  a watcher fell too far behind; resume from ``resume_revision``
        └── Overloaded           503  too many writes in flight; nothing was done, retry
                                      after ``retry_after`` seconds
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "HivememError",
    "InvalidInput",
    "PayloadTooLarge",
    "NotFound",
    "Conflict",
    "PermissionDenied",
    "Unauthenticated",
    "Compacted",
    "Unavailable",
    "Lagged",
    "Overloaded",
    "ERRORS_BY_TYPE",
]


class HivememError(Exception):
    """Base of every hivemem error."""

    status = 500
    problem_type = "internal"
    title = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    def extras(self) -> dict[str, Any]:
        """Fields beyond ``detail`` that travel in the problem body."""
        return {}

    @classmethod
    def from_problem(cls, body: dict[str, Any]) -> HivememError:
        """Rebuild the error from its problem+json body (used by the client)."""
        return cls(body.get("detail", ""))


class InvalidInput(HivememError):
    """The input was rejected; ``field`` names the offending part. Nothing was written."""

    status = 422
    problem_type = "invalid-input"
    title = "Invalid input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field

    def extras(self) -> dict[str, Any]:
        return {"field": self.field}

    @classmethod
    def from_problem(cls, body: dict[str, Any]) -> HivememError:
        field = body.get("field", "")
        detail = body.get("detail", "")
        prefix = f"{field}: "
        err = cls(field, detail[len(prefix) :] if detail.startswith(prefix) else detail)
        return err


class PayloadTooLarge(InvalidInput):
    """A value or request body is larger than the configured limit."""

    status = 413
    problem_type = "payload-too-large"
    title = "Payload too large"


class NotFound(HivememError):
    """No such item (absent, deleted, expired, or not readable by the caller)."""

    status = 404
    problem_type = "not-found"
    title = "Not found"


class Conflict(HivememError):
    """The write was based on a stale version, or a three-way merge overlapped.

    ``current`` is the item as it is now (``None`` if it does not exist);
    ``conflicts`` lists each overlapping JSON path of a three-way merge
    (``MergeConflict``), or the failed ``test`` of an update (``PatchTestFailure``);
    ``namespace`` and ``key`` name the item the refused write was for (in a batch or a
    transaction, the op that conflicted).
    """

    status = 409
    problem_type = "conflict"
    title = "Conflict"

    def __init__(
        self,
        detail: str,
        current: Any = None,
        conflicts: list[Any] | None = None,
        namespace: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.current = current
        self.conflicts = list(conflicts or [])
        self.namespace = namespace
        self.key = key

    def extras(self) -> dict[str, Any]:
        def dump(x: Any) -> Any:
            return x.model_dump(mode="json") if hasattr(x, "model_dump") else x

        return {
            "current": dump(self.current) if self.current is not None else None,
            "conflicts": [dump(c) for c in self.conflicts],
            "namespace": self.namespace,
            "key": self.key,
        }

    @classmethod
    def from_problem(cls, body: dict[str, Any]) -> HivememError:
        from hivemem.memory.models import Item, MergeConflict, PatchTestFailure

        current = body.get("current")
        conflicts = [
            (PatchTestFailure if "expected" in c else MergeConflict).model_validate(c)
            for c in body.get("conflicts") or []
        ]
        return cls(
            body.get("detail", ""),
            current=Item.model_validate(current) if current else None,
            conflicts=conflicts,
            namespace=body.get("namespace"),
            key=body.get("key"),
        )


class PermissionDenied(HivememError, PermissionError):
    """The caller may not do this here (readable but not writable, or not admin).

    Also a builtin ``PermissionError``, so code that knows nothing of hivemem (a
    framework running an adapter) can still tell a refusal from a failure.
    """

    status = 403
    problem_type = "permission-denied"
    title = "Permission denied"


class Unauthenticated(HivememError):
    """No API key, or an unknown or revoked one."""

    status = 401
    problem_type = "unauthenticated"
    title = "Unauthenticated"


class Compacted(HivememError):
    """The revision asked for lies below the compaction point."""

    status = 410
    problem_type = "compacted"
    title = "Revision compacted"

    def __init__(self, compacted_revision: int, detail: str = "") -> None:
        super().__init__(detail or f"history below revision {compacted_revision} was compacted")
        self.compacted_revision = compacted_revision

    def extras(self) -> dict[str, Any]:
        return {"compacted_revision": self.compacted_revision}

    @classmethod
    def from_problem(cls, body: dict[str, Any]) -> HivememError:
        return cls(int(body.get("compacted_revision", 0)), body.get("detail", ""))


class Unavailable(HivememError):
    """A backend is unreachable or a derived view is not caught up."""

    status = 503
    problem_type = "unavailable"
    title = "Unavailable"


class Lagged(Unavailable):
    """A watcher fell too far behind and was cut off; resume after ``resume_revision``."""

    problem_type = "watch-lagged"
    title = "Watcher fell behind"

    def __init__(self, resume_revision: int, detail: str = "") -> None:
        super().__init__(
            detail or f"watcher fell too far behind; resume with since={resume_revision}"
        )
        self.resume_revision = resume_revision

    def extras(self) -> dict[str, Any]:
        return {"resume_revision": self.resume_revision}

    @classmethod
    def from_problem(cls, body: dict[str, Any]) -> HivememError:
        return cls(int(body.get("resume_revision", 0)), body.get("detail", ""))


class Overloaded(Unavailable):
    """The server sheds load: the request was not run. Send it again after ``retry_after``."""

    problem_type = "overloaded"
    title = "Overloaded"

    def __init__(self, detail: str = "", retry_after: int = 1) -> None:
        super().__init__(detail or f"too many writes in flight; retry after {retry_after} s")
        self.retry_after = retry_after

    def extras(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}

    @classmethod
    def from_problem(cls, body: dict[str, Any]) -> HivememError:
        after = body.get("retry_after")
        seconds = after if isinstance(after, int) and not isinstance(after, bool) else 1
        return cls(body.get("detail", ""), retry_after=seconds)


ERRORS_BY_TYPE: dict[str, type[HivememError]] = {
    cls.problem_type: cls
    for cls in (
        HivememError,
        InvalidInput,
        PayloadTooLarge,
        NotFound,
        Conflict,
        PermissionDenied,
        Unauthenticated,
        Compacted,
        Unavailable,
        Lagged,
        Overloaded,
    )
}
