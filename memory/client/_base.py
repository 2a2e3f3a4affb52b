"""What the sync and async clients share: configuration, request building and the
retry policy. Nothing here does I/O; the wire format (problem decoding, body encoding,
line splitting) is in ``_wire``.

Every operation is first turned into a :class:`Call` (method, path, query, body,
whether it is safe to send twice, how to parse the answer); ``Client`` and
``AsyncClient`` only differ in how they send it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from hivemem.memory.client._wire import (
    _GRANTS,
    _HITS,
    _ITEMS,
    _KEYS,
    _PROPOSALS,
    Call,
    _claim_or_none,
    _compare,
    _item_or_proposal,
    _json,
    _json_param,
    _many,
    _model,
    _nothing,
    _op,
    _strs,
    _vector,
    encode_json,
    error_from_problem,
    error_from_response,
    item_path,
    ndjson,
)
from hivemem.memory.errors import InvalidInput, Unavailable
from hivemem.memory.models import (
    Activity,
    ApiKeyCreated,
    ApiKeyInfo,
    Claim,
    Grant,
    Hit,
    Item,
    Lease,
    ListPage,
    NamespacePage,
    Proposal,
    Recall,
    TxnResult,
)

__all__ = ["BaseClient", "Call", "RETRY_STATUSES", "error_from_response", "error_from_problem"]

#: Statuses worth sending a safe request again for: the server or a proxy in front of
#: it was briefly unable to answer. Anything else is the answer.
RETRY_STATUSES = frozenset({502, 503, 504})


class BaseClient:
    """Configuration and request building common to ``Client`` and ``AsyncClient``."""

    #: Seconds before the first retry; doubles each time up to ``_backoff_cap``.
    _backoff_base = 0.1
    _backoff_cap = 2.0

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInput("retries", "must be a non-negative integer")
        self.base_url = str(base_url).rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self._principal: str | None = None
        #: The newest revision this client has written. Every later read and search sends
        #: it as ``min_revision``, so behind a load balancer a client reads its own writes
        #: on whichever replica answers.
        self.written_revision: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    # -- plumbing --------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return self.base_url + path

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = {"Accept": "application/json, application/problem+json"}
        if call.content is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(call.headers)
        return headers

    def _attempts(self, call: Call[Any]) -> int:
        return 1 + self.retries

    @staticmethod
    def _shed(response: httpx.Response) -> bool:
        """A write the server shed (503 ``/problems/overloaded``): it was never run."""
        if response.status_code != 503 or "retry-after" not in response.headers:
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("type") == "/problems/overloaded"

    def _again(self, call: Call[Any], response: httpx.Response) -> bool:
        """Whether to send ``call`` again after ``response`` (attempts permitting).

        A shed request was never run, so any call may be sent again; other transient
        statuses only for calls that are safe to send twice.
        """
        if response.status_code not in RETRY_STATUSES:
            return False
        return call.retry or self._shed(response)

    def _delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (full jitter, honours Retry-After)."""
        if response is not None:
            after = response.headers.get("Retry-After", "")
            if after.isdigit():
                # Retry-After is a floor; jitter spreads the crowd that was shed at once
                return min(float(after), self._backoff_cap) * (1 + random.random() / 4)
        step = min(self._backoff_cap, self._backoff_base * 2.0**attempt)
        return step * (0.5 + random.random() / 2)

    def _saw(self, call: Call[Any], result: Any) -> None:
        """Remember the revision a write returned."""
        if not call.writes:
            return
        found = [result] if not isinstance(result, list) else result
        revisions = [r.revision for r in found if isinstance(r, Item | TxnResult)]
        if revisions and max(revisions) > (self.written_revision or 0):
            self.written_revision = max(revisions)

    def _min_revision(self, min_revision: int | None) -> list[tuple[str, str]]:
        """The ``min_revision`` to send: the caller's, else the newest this client wrote."""
        chosen = self.written_revision if min_revision is None else min_revision
        return [] if chosen is None else [("min_revision", str(chosen))]

    def _unavailable(self, exc: Exception) -> Unavailable:
        return Unavailable(f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}")

    # -- items ---------------------------------------------------------------------
    def _put_call(
        self, namespace: str, key: str, value: Any, **options: Any
    ) -> Call[Item | Proposal]:
        body: dict[str, Any] = {"value": value}
        if options.get("vector") is not None:
            options["vector"] = _vector(options["vector"])
        if options.get("merge") == "replace":
            del options["merge"]
        body.update({k: v for k, v in options.items() if v is not None})
        return Call(
            "PUT",
            "/v1/items" + item_path(namespace, key),
            _item_or_proposal,
            content=encode_json(body),
            retry=options.get("if_version") is not None,
            writes=True,
        )

    def _update_call(
        self, namespace: str, key: str, ops: Sequence[dict[str, Any]], **options: Any
    ) -> Call[Item]:
        body: dict[str, Any] = {"ops": list(ops) if isinstance(ops, list | tuple) else ops}
        if options.get("vector") is not None:
            options["vector"] = _vector(options["vector"])
        if options.get("create") is True:
            del options["create"]
        body.update({k: v for k, v in options.items() if v is not None})
        return Call(
            "PATCH",
            "/v1/items" + item_path(namespace, key),
            _model(Item),
            content=encode_json(body),
            # Only a compare-and-swap update is safe to send twice.
            retry=options.get("if_version") is not None,
            headers={"Content-Type": "application/vnd.hivemem.update+json"},
            writes=True,
        )

    def _get_call(
        self, namespace: str, key: str, at_revision: int | None, min_revision: int | None = None
    ) -> Call[Item]:
        params = [] if at_revision is None else [("at_revision", str(at_revision))]
        params += self._min_revision(min_revision)
        path = "/v1/items" + item_path(namespace, key)
        return Call("GET", path, _model(Item), params=params, retry=True)

    def _delete_call(
        self, namespace: str, key: str, if_version: int | None, fence: str | None = None
    ) -> Call[Item | Proposal]:
        params = [] if if_version is None else [("if_version", str(if_version))]
        if fence is not None:
            params.append(("fence", str(fence)))
        path = "/v1/items" + item_path(namespace, key)
        return Call(
            "DELETE",
            path,
            _item_or_proposal,
            params=params,
            retry=if_version is not None,
            writes=True,
        )

    def _history_call(
        self, namespace: str, key: str, min_revision: int | None = None
    ) -> Call[list[Item]]:
        path = "/v1/history" + item_path(namespace, key)
        params = self._min_revision(min_revision)
        return Call("GET", path, _many(_ITEMS), params=params, retry=True)

    def _put_many_call(self, ops: Sequence[Any]) -> Call[list[Item]]:
        body = {"ops": [_op(o) for o in ops]}
        return Call("POST", "/v1/batch", _many(_ITEMS), content=encode_json(body), writes=True)

    def _list_call(
        self,
        prefix: str,
        filter: dict[str, Any] | None,
        limit: int,
        cursor: str | None,
        min_revision: int | None = None,
    ) -> Call[ListPage]:
        params = [("prefix", prefix or ""), ("limit", str(limit))]
        params += self._min_revision(min_revision)
        if cursor is not None:
            params.append(("cursor", cursor))
        if filter is not None:
            params.append(("filter", _json_param("filter", filter)))
        return Call("GET", "/v1/items", _model(ListPage), params=_strs(params), retry=True)

    def _namespaces_call(
        self,
        prefix: str,
        depth: int | None,
        limit: int,
        cursor: str | None,
        min_revision: int | None = None,
    ) -> Call[NamespacePage]:
        params = [("prefix", prefix or ""), ("limit", str(limit))]
        params += self._min_revision(min_revision)
        if depth is not None:
            params.append(("depth", str(depth)))
        if cursor is not None:
            params.append(("cursor", cursor))
        return Call(
            "GET", "/v1/namespaces", _model(NamespacePage), params=_strs(params), retry=True
        )

    def _activity_call(
        self, prefix: str, window: int, bucket: int | None, depth: int | None, limit: int
    ) -> Call[Activity]:
        params = [("prefix", prefix or ""), ("window", str(window)), ("limit", str(limit))]
        if bucket is not None:
            params.append(("bucket", str(bucket)))
        if depth is not None:
            params.append(("depth", str(depth)))
        return Call("GET", "/v1/activity", _model(Activity), params=_strs(params), retry=True)

    def _search_call(
        self,
        query: str | None,
        namespaces: Sequence[str] | str | None,
        k: int,
        mode: str,
        filter: dict[str, Any] | None,
        vector: Sequence[float] | None,
        thread: str | None = None,
        at_revision: int | None = None,
        min_revision: int | None = None,
    ) -> Call[list[Hit]]:
        if isinstance(namespaces, str):
            namespaces = [namespaces]  # one prefix, as the engine allows
        elif isinstance(namespaces, tuple):
            namespaces = list(namespaces)
        body = {
            "query": query,
            "namespaces": namespaces,
            "k": k,
            "mode": mode,
            "filter": filter,
            "vector": _vector(vector),
            "thread": thread,
            "at_revision": at_revision,
            "min_revision": self.written_revision if min_revision is None else min_revision,
        }
        content = encode_json({k: v for k, v in body.items() if v is not None})
        # A search changes nothing, so it is as safe to repeat as a GET.
        return Call("POST", "/v1/search", _many(_HITS), content=content, retry=True)

    def _recall_call(self, query: str | None, namespaces: Any, **options: Any) -> Call[Recall]:
        if isinstance(namespaces, str | tuple):
            namespaces = [namespaces] if isinstance(namespaces, str) else list(namespaces)
        options["vector"] = _vector(options.get("vector"))
        body = {"query": query, "namespaces": namespaces, **options}
        content = encode_json({k: v for k, v in body.items() if v is not None})
        return Call("POST", "/v1/recall", _model(Recall), content=content, retry=True)

    def _txn_call(
        self, compare: Sequence[Any], success: Sequence[Any], failure: Sequence[Any]
    ) -> Call[TxnResult]:
        body = {
            "compare": [_compare(c) for c in compare],
            "success": [_op(o) for o in success],
            "failure": [_op(o) for o in failure],
        }
        return Call("POST", "/v1/txn", _model(TxnResult), content=encode_json(body), writes=True)

    # -- leases ----------------------------------------------------------------------
    def _lease_call(self, ttl: float) -> Call[Lease]:
        return Call("POST", "/v1/leases", _model(Lease), content=encode_json({"ttl": ttl}))

    def _keepalive_call(self, lease_id: str) -> Call[Lease]:
        # Renewing twice is harmless: safe to send again.
        path = f"/v1/leases/{quote(str(lease_id), safe='')}/keepalive"
        return Call("POST", path, _model(Lease), retry=True)

    def _revoke_lease_call(self, lease_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/leases/{quote(str(lease_id), safe='')}", _nothing)

    def _get_lease_call(self, lease_id: str) -> Call[Lease]:
        path = f"/v1/leases/{quote(str(lease_id), safe='')}"
        return Call("GET", path, _model(Lease), retry=True)

    # -- task claims -------------------------------------------------------------------
    def _claim_call(
        self,
        namespace: str,
        key: str | None,
        lease: str | None,
        ttl: float | None,
        filter: dict[str, Any] | None,
        max_attempts: int | None,
    ) -> Call[Claim | None]:
        body = {
            "namespace": namespace,
            "key": key,
            "lease": lease,
            "ttl": ttl,
            "filter": filter,
            "max_attempts": max_attempts,
        }
        content = encode_json({k: v for k, v in body.items() if v is not None})
        return Call("POST", "/v1/claims", _claim_or_none, content=content)

    def _complete_call(self, token: str, value: Any) -> Call[Item]:
        content = encode_json({"token": token, "value": value})
        return Call("POST", "/v1/claims/complete", _model(Item), content=content)

    def _release_call(self, token: str) -> Call[Item]:
        content = encode_json({"token": token})
        return Call("POST", "/v1/claims/release", _model(Item), content=content)

    # -- proposals ---------------------------------------------------------------------
    def _proposals_call(self, prefix: str, status: str | None, limit: int) -> Call[list[Proposal]]:
        params = [("prefix", prefix or ""), ("status", status or "any"), ("limit", str(limit))]
        return Call("GET", "/v1/proposals", _many(_PROPOSALS), params=_strs(params), retry=True)

    def _get_proposal_call(self, proposal_id: str) -> Call[Proposal]:
        path = f"/v1/proposals/{quote(str(proposal_id), safe='')}"
        return Call("GET", path, _model(Proposal), retry=True)

    def _review_call(self, proposal_id: str, verb: str, reason: str | None) -> Call[Proposal]:
        path = f"/v1/proposals/{quote(str(proposal_id), safe='')}/{verb}"
        body = encode_json({"reason": reason})
        return Call("POST", path, _model(Proposal), content=body)

    # -- maintenance -------------------------------------------------------------------
    def _compact_call(self, revision: int) -> Call[int]:
        body = encode_json({"revision": revision})
        return Call(
            "POST", "/v1/compact", lambda r: int(r.json()["compacted_revision"]), content=body
        )

    def _revision_call(self) -> Call[dict[str, int]]:
        return Call("GET", "/v1/revision", _json, retry=True)

    def _whoami_call(self) -> Call[str]:
        return Call("GET", "/v1/whoami", lambda r: str(r.json()["principal"]), retry=True)

    # -- grants and keys -----------------------------------------------------------------
    def _grant_call(self, principal: str, prefix: str, permission: str) -> Call[Grant]:
        body = encode_json({"principal": principal, "prefix": prefix, "permission": permission})
        return Call("PUT", "/v1/grants", _model(Grant), content=body)

    def _revoke_call(self, principal: str, prefix: str) -> Call[None]:
        params = [("principal", principal), ("prefix", prefix)]
        return Call("DELETE", "/v1/grants", _nothing, params=_strs(params))

    def _grants_call(self, principal: str | None) -> Call[list[Grant]]:
        params = [] if principal is None else [("principal", principal)]
        return Call("GET", "/v1/grants", _many(_GRANTS), params=_strs(params), retry=True)

    def _principals_call(self) -> Call[list[str]]:
        return Call("GET", "/v1/principals", lambda r: [str(p) for p in r.json()], retry=True)

    def _create_key_call(self, principal: str) -> Call[ApiKeyCreated]:
        body = encode_json({"principal": principal})
        return Call("POST", "/v1/keys", _model(ApiKeyCreated), content=body)

    def _revoke_key_call(self, key_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/keys/{quote(str(key_id), safe='')}", _nothing)

    def _keys_call(self, principal: str | None) -> Call[list[ApiKeyInfo]]:
        params = [] if principal is None else [("principal", principal)]
        return Call("GET", "/v1/keys", _many(_KEYS), params=_strs(params), retry=True)

    # -- export / import -------------------------------------------------------------
    def _export_call(self, prefix: str, vectors: bool) -> Call[None]:
        params = [("prefix", prefix or ""), ("vectors", "true" if vectors else "false")]
        return Call("GET", "/v1/export", _nothing, params=_strs(params), retry=True)

    def _import_call(self, records: Sequence[dict[str, Any]]) -> Call[int]:
        return Call(
            "POST",
            "/v1/import",
            lambda r: int(r.json()["imported"]),
            content=ndjson(records),
            headers={"Content-Type": "application/x-ndjson"},
        )
