"""``Client``: the blocking HTTP client, method for method the same as ``Memory``."""

from __future__ import annotations

import builtins
import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import httpx

from hivemem.memory.client._base import RETRY_STATUSES, BaseClient
from hivemem.memory.client._watch import EventParser, Resume, WatchCursor
from hivemem.memory.client._wire import Call, error_from_response, import_chunks, wire_lines
from hivemem.memory.errors import HivememError, Unavailable
from hivemem.memory.models import (
    Activity,
    ApiKeyCreated,
    ApiKeyInfo,
    Change,
    Claim,
    Compare,
    DeleteOp,
    GetOp,
    Grant,
    Hit,
    Item,
    Lease,
    ListPage,
    NamespacePage,
    Proposal,
    PutOp,
    Recall,
    TxnResult,
    UpdateOp,
)

__all__ = ["Client", "WatchStream"]

T = TypeVar("T")


class Client(BaseClient):
    """A hivemem server seen through one API key, with the methods of ``Memory``.

    Errors are the engine's own classes (``Conflict``, ``NotFound``, …); a server that
    cannot be reached is ``Unavailable``. Reads and compare-and-swap writes are retried
    on connection errors and 502/503/504; plain writes only when the server shed them
    (503 ``Overloaded``: never run), honouring ``Retry-After``, ``retries`` times.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        retries: int = 3,
    ) -> None:
        super().__init__(base_url, api_key, timeout=timeout, retries=retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout)

    # -- sending ---------------------------------------------------------------------
    def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """Send ``call`` (again, if it is safe and failed transiently); raise its error."""
        attempts = self._attempts(call)
        for attempt in range(attempts):
            request = self._http.build_request(
                call.method,
                self._url(call.path),
                params=tuple(call.params),
                content=call.content,
                headers=self._headers(call),
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if call.retry and attempt + 1 < attempts:
                    time.sleep(self._delay(attempt))
                    continue
                raise self._unavailable(exc) from exc
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                try:
                    response.read()
                except httpx.TransportError:
                    pass  # then it is judged by its status alone
                if self._again(call, response):
                    response.close()
                    time.sleep(self._delay(attempt, response))
                    continue
            if response.status_code >= 400:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise self._unavailable(exc) from exc
                finally:
                    response.close()
                raise error_from_response(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, call: Call[T]) -> T:
        result = call.parse(self._send(call))
        self._saw(call, result)
        return result

    def close(self) -> None:
        """Close the connection pool (unless it was passed in by the caller)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity and revisions ------------------------------------------------------
    @property
    def principal(self) -> str:
        """The principal this client's API key belongs to."""
        if self._principal is None:
            self._principal = self._call(self._whoami_call())
        return self._principal

    @property
    def revision(self) -> int:
        """The latest committed revision."""
        return int(self._call(self._revision_call())["revision"])

    @property
    def compacted_revision(self) -> int:
        """History below this revision is gone (0 if never compacted)."""
        return int(self._call(self._revision_call())["compacted_revision"])

    # -- writes ----------------------------------------------------------------------
    def put(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        if_version: int | None = None,
        merge: str = "replace",
        base_version: int | None = None,
        on_conflict: str | None = None,
        ttl: float | None = None,
        vector: Sequence[float] | None = None,
        lease: str | None = None,
        fence: str | None = None,
        thread: str | None = None,
    ) -> Item | Proposal:
        """Write one item and return the version written (see ``Memory.put``); a
        proposer gets the pending ``Proposal``."""
        return self._call(
            self._put_call(
                namespace,
                key,
                value,
                text=text,
                metadata=metadata,
                if_version=if_version,
                merge=merge,
                base_version=base_version,
                on_conflict=on_conflict,
                ttl=ttl,
                vector=vector,
                lease=lease,
                fence=fence,
                thread=thread,
            )
        )

    def update(
        self,
        namespace: str,
        key: str,
        ops: Sequence[dict[str, Any]],
        *,
        if_version: int | None = None,
        create: bool = True,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        vector: Sequence[float] | None = None,
        fence: str | None = None,
        ttl: float | None = None,
        metadata_ops: Sequence[dict[str, Any]] | None = None,
    ) -> Item:
        """Apply operations to the current value atomically (see ``Memory.update``)."""
        return self._call(
            self._update_call(
                namespace,
                key,
                ops,
                if_version=if_version,
                create=create,
                text=text,
                metadata=metadata,
                vector=vector,
                fence=fence,
                ttl=ttl,
                metadata_ops=list(metadata_ops) if metadata_ops is not None else None,
            )
        )

    def put_many(self, ops: Sequence[PutOp | UpdateOp | dict[str, Any]]) -> list[Item]:
        """Write many items in one transaction (one revision), all or nothing."""
        return self._call(self._put_many_call(ops))

    def delete(
        self,
        namespace: str,
        key: str,
        if_version: int | None = None,
        *,
        fence: str | None = None,
    ) -> Item | Proposal:
        """Delete an item, leaving a tombstone in history; returns the tombstone (a
        proposer gets the pending ``Proposal``)."""
        return self._call(self._delete_call(namespace, key, if_version, fence))

    def txn(
        self,
        compare: Sequence[Compare | dict[str, Any]] = (),
        success: Sequence[PutOp | UpdateOp | DeleteOp | GetOp | dict[str, Any]] = (),
        failure: Sequence[PutOp | UpdateOp | DeleteOp | GetOp | dict[str, Any]] = (),
    ) -> TxnResult:
        """If every compare holds run ``success``, else ``failure``: one revision, atomic."""
        return self._call(self._txn_call(compare, success, failure))

    # -- leases ----------------------------------------------------------------------
    def lease(self, ttl: float = 10) -> Lease:
        """Grant a lease of ``ttl`` seconds; renew it with ``keepalive``."""
        return self._call(self._lease_call(ttl))

    def keepalive(self, lease_id: str) -> Lease:
        """Renew a lease for its ``ttl`` from now; NotFound once it has ended."""
        return self._call(self._keepalive_call(lease_id))

    def revoke_lease(self, lease_id: str) -> None:
        """End a lease now: every item attached to it expires."""
        self._call(self._revoke_lease_call(lease_id))

    def get_lease(self, lease_id: str) -> Lease:
        """A lease: its ttl, deadline, time remaining and attached item count."""
        return self._call(self._get_lease_call(lease_id))

    # -- task claims -------------------------------------------------------------------
    def claim(
        self,
        namespace: str,
        key: str | None = None,
        *,
        lease: str | None = None,
        ttl: float | None = None,
        filter: dict[str, Any] | None = None,
        max_attempts: int | None = None,
    ) -> Claim | None:
        """Claim task ``key`` or the oldest open one; None when none is open."""
        return self._call(self._claim_call(namespace, key, lease, ttl, filter, max_attempts))

    def complete(self, token: str, value: Any = None) -> Item:
        """Mark the claimed task done; Conflict unless the claim is still current."""
        return self._call(self._complete_call(token, value))

    def release(self, token: str) -> Item:
        """Give the claimed task back (open again, or dead once out of attempts)."""
        return self._call(self._release_call(token))

    # -- proposals -------------------------------------------------------------------
    def proposals(
        self, prefix: str = "", status: str | None = "pending", limit: int = 100
    ) -> builtins.list[Proposal]:
        """Proposals under ``prefix`` the caller may see; ``status=None``: every status."""
        return self._call(self._proposals_call(prefix, status, limit))

    def get_proposal(self, proposal_id: str) -> Proposal:
        """One proposal the caller may see."""
        return self._call(self._get_proposal_call(proposal_id))

    def approve(self, proposal_id: str, reason: str | None = None) -> Proposal:
        """Apply a pending proposal against its base version (Conflict as for writes)."""
        return self._call(self._review_call(proposal_id, "approve", reason))

    def reject(self, proposal_id: str, reason: str | None = None) -> Proposal:
        """Reject a pending proposal, recording why."""
        return self._call(self._review_call(proposal_id, "reject", reason))

    # -- reads -----------------------------------------------------------------------
    def get(
        self,
        namespace: str,
        key: str,
        at_revision: int | None = None,
        min_revision: int | None = None,
    ) -> Item:
        """The current item, or the version visible at ``at_revision``.

        ``min_revision`` defaults to the newest revision this client wrote.
        """
        return self._call(self._get_call(namespace, key, at_revision, min_revision))

    def history(self, namespace: str, key: str, min_revision: int | None = None) -> list[Item]:
        """Every version of an item still in history, oldest first (tombstones too)."""
        return self._call(self._history_call(namespace, key, min_revision))

    def list(
        self,
        prefix: str = "",
        filter: dict[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        min_revision: int | None = None,
    ) -> ListPage:
        """Live items under a namespace prefix, ordered by (namespace, key), paginated."""
        return self._call(self._list_call(prefix, filter, limit, cursor, min_revision))

    def namespaces(
        self,
        prefix: str = "",
        depth: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
        min_revision: int | None = None,
    ) -> NamespacePage:
        """Namespaces under ``prefix`` holding live items the caller may read, with counts."""
        call = self._namespaces_call(prefix, depth, limit, cursor, min_revision)
        return self._call(call)

    def activity(
        self,
        prefix: str = "",
        window: int = 3600,
        bucket: int | None = None,
        depth: int | None = None,
        limit: int = 20,
    ) -> Activity:
        """Writes, conflicts, expiries and lagged watchers per namespace and author over
        the last ``window`` seconds, in readable namespaces only."""
        return self._call(self._activity_call(prefix, window, bucket, depth, limit))

    def search(
        self,
        query: str | None = None,
        namespaces: Sequence[str] | str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        filter: dict[str, Any] | None = None,
        vector: Sequence[float] | None = None,
        thread: str | None = None,
        at_revision: int | None = None,
        min_revision: int | None = None,
    ) -> builtins.list[Hit]:
        """Top-k items by ``vector``, ``keyword`` or ``hybrid`` relevance, best first."""
        call = self._search_call(
            query, namespaces, k, mode, filter, vector, thread, at_revision, min_revision
        )
        return self._call(call)

    def recall(
        self,
        query: str | None = None,
        namespaces: Sequence[str] | str | None = None,
        budget_tokens: int = 1500,
        *,
        k: int = 20,
        mode: str = "hybrid",
        filter: dict[str, Any] | None = None,
        thread: str | None = None,
        at_revision: int | None = None,
        vector: Sequence[float] | None = None,
    ) -> Recall:
        """A prompt-ready context of the best hits under a token budget (the model's tokens)."""
        return self._call(
            self._recall_call(
                query,
                namespaces,
                budget_tokens=budget_tokens,
                k=k,
                mode=mode,
                filter=filter,
                thread=thread,
                at_revision=at_revision,
                vector=vector,
            )
        )

    def watch(
        self,
        namespaces: Sequence[str] | str | None = None,
        since: int = 0,
        *,
        thread: str | None = None,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        threshold: float | None = None,
        filter: dict[str, Any] | None = None,
    ) -> WatchStream:
        """Changes under the prefixes with revision > ``since``: replayed, then live.

        The stream reconnects by itself (after a dropped connection or ``Lagged``) from
        the last revision it handed over; close it when done.
        """
        cursor = WatchCursor(namespaces, since, query, vector, threshold, filter, thread)
        return WatchStream(self, cursor)

    # -- maintenance -----------------------------------------------------------------
    def compact(self, revision: int) -> int:
        """Drop history below ``revision``; reads and watches below it raise Compacted."""
        return self._call(self._compact_call(revision))

    # -- principals, grants, keys ----------------------------------------------------
    def grant(self, principal: str, prefix: str, permission: str) -> Grant:
        """Give ``principal`` ``permission`` on every namespace under ``prefix``."""
        return self._call(self._grant_call(principal, prefix, permission))

    def revoke(self, principal: str, prefix: str) -> None:
        """Remove ``principal``'s grant on ``prefix``."""
        self._call(self._revoke_call(principal, prefix))

    def grants(self, principal: str | None = None) -> builtins.list[Grant]:
        """Grants visible to the caller."""
        return self._call(self._grants_call(principal))

    def principals(self) -> builtins.list[str]:
        """Every principal that holds a grant or a key (admin of the whole store only)."""
        return self._call(self._principals_call())

    def create_key(self, principal: str) -> ApiKeyCreated:
        """A new API key for ``principal``; the secret is returned only this once."""
        return self._call(self._create_key_call(principal))

    def revoke_key(self, key_id: str) -> None:
        """Revoke an API key."""
        self._call(self._revoke_key_call(key_id))

    def keys(self, principal: str | None = None) -> builtins.list[ApiKeyInfo]:
        """API keys (never their secrets)."""
        return self._call(self._keys_call(principal))

    # -- export / import -------------------------------------------------------------
    def export(self, prefix: str = "", *, vectors: bool = True) -> Iterator[dict[str, Any]]:
        """Current items under ``prefix`` as JSON-ready records, streamed."""
        response = self._send(self._export_call(prefix, vectors), stream=True)
        try:
            for line in wire_lines(response.iter_bytes()):
                if line.strip():
                    yield json.loads(line)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc
        finally:
            response.close()

    def import_items(self, records: Iterable[dict[str, Any]], batch: int = 500) -> int:
        """Write exported records back (one request and one revision per ``batch``)."""
        return sum(self._call(self._import_call(chunk)) for chunk in import_chunks(records, batch))


class WatchStream:
    """An iterator of ``Change`` over a server's watch stream that resumes by itself.

    ``reconnects`` counts the times it resumed; ``close()`` (from any thread) ends it.
    """

    def __init__(self, client: Client, cursor: WatchCursor) -> None:
        self._client = client
        self._cursor = cursor
        self._buffer: deque[Change] = deque()
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._parser = EventParser()
        self._silent = 0
        self._closed = False
        self._lock = threading.Lock()  # guards _response and _lines
        self._reading = threading.Lock()  # held while a thread reads the stream

    @property
    def last_revision(self) -> int:
        """The last revision handed over (resume from here)."""
        return self._cursor.last

    @property
    def reconnects(self) -> int:
        return self._cursor.reconnects

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> Change:
        while not self._buffer:
            if self._closed:
                raise StopIteration
            self._pump()
        return self._buffer.popleft()

    def _pump(self) -> None:
        """Read until at least one change is buffered or the connection ends."""
        with self._reading:
            if self._lines is None:
                self._connect()
                return
            heard, clean = False, True
            try:
                for line in self._lines:
                    heard = True
                    event = self._parser.feed(line)
                    if event is not None:
                        self._buffer.extend(self._cursor.take(event))
                        if self._buffer:
                            return
            except Resume:
                heard = True
            except httpx.HTTPError:
                clean = False  # the connection dropped: resume below
            except HivememError:  # the server ended the stream for good (e.g. Compacted)
                self._closed = True
                self._drop()
                raise
            except Exception:
                if not self._closed:
                    raise
            self._drop()
        if not self._closed:
            self._cursor.reconnects += 1
            time.sleep(self._pause(heard, clean))

    def _pause(self, heard: bool, clean: bool) -> float:
        """Seconds to wait before reconnecting; gives up on a server that sends nothing."""
        if heard:
            self._silent = 0
            return 0.0
        if not clean:  # dropped while idle: come back soon, but never in a busy loop
            return self._client._delay(0)
        self._silent += 1
        if self._silent > self._client.retries:
            raise Unavailable("the watch stream keeps ending without sending anything")
        return self._client._delay(self._silent - 1)

    def _connect(self) -> None:
        response = self._client._send(self._cursor.call(), stream=True)
        with self._lock:
            if self._closed:
                response.close()
                return
            self._response = response
            self._lines = wire_lines(response.iter_bytes())
            self._parser = EventParser()

    def _drop(self) -> None:
        with self._lock:
            response, self._response, self._lines = self._response, None, None
        if response is not None:
            response.close()

    def close(self) -> None:
        """End the stream; an iteration blocked in another thread stops."""
        self._closed = True
        self._buffer.clear()
        with self._lock:
            response = self._response
        if response is not None:
            # A read blocked in another thread only returns when its socket is shut.
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        with self._reading:
            self._drop()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
