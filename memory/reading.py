"""Reading: get, history, list, namespaces, search, recall, watch and activity."""

from __future__ import annotations

import base64
import builtins
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hivemem.memory.activity import build_activity, check_activity_args
from hivemem.memory.errors import Compacted, InvalidInput, NotFound
from hivemem.memory.models import (
    Activity,
    Change,
    Hit,
    Item,
    ListPage,
    NamespaceInfo,
    NamespacePage,
    Proposal,
    Recall,
)
from hivemem.memory.proposals import proposal_of
from hivemem.memory.recall import default_counter, pack
from hivemem.memory.retrieval import rank_at, rank_current
from hivemem.memory.rows import build_model, row_to_change, row_to_item
from hivemem.memory.search import parse_filter
from hivemem.memory.subscriptions import DEFAULT_THRESHOLD, Matcher, check_threshold
from hivemem.memory.validation import (
    INT64_MAX,
    MAX_PAGE,
    MAX_QUERY_CHARS,
    check_int,
    check_key,
    check_namespace,
    check_text,
    check_vector,
    in_scope,
    json_text_depth,
    unit_vector,
)
from hivemem.memory.views import Core
from hivemem.memory.watch import Subscription


class ReadsMixin:
    """The ``Memory`` methods that read: items, pages, search, recall, watch, activity."""

    if TYPE_CHECKING:
        _core: Core
        principal: str
        _superuser: bool

        def _require(self, namespace: str, permission: str) -> None: ...
        def _scopes(self, prefixes: Sequence[str] | str | None, field: str) -> list[str]: ...
        def _await(self, min_revision: Any, *, views: bool) -> None: ...
        def _sees(self, proposal: Proposal) -> bool: ...

    # -- reads ---------------------------------------------------------------------
    def get(
        self,
        namespace: str,
        key: str,
        at_revision: int | None = None,
        min_revision: int | None = None,
    ) -> Item:
        """The current item, or the version visible at ``at_revision``.

        ``min_revision`` (on every read and search): first wait, bounded, until this
        store has applied that revision, so a write made through another replica is seen.
        """
        check_namespace(namespace, stored=True)
        check_key(key)
        self._require(namespace, "read")
        self._await(min_revision, views=False)
        if at_revision is not None:
            self._check_revision(at_revision, "at_revision")
        row = self._core.log.get(namespace, key, at_revision, time.time())
        if row is None:
            raise NotFound("no such item")
        return row_to_item(row)

    def _check_revision(self, revision: Any, field: str) -> None:
        check_int(revision, field, 0, INT64_MAX, "a revision")
        head = self._core.log.head()
        if revision > head:
            raise InvalidInput(field, f"is ahead of the latest revision {head}")
        compacted = self._core.log.compacted_revision()
        if revision < compacted:
            raise Compacted(compacted)

    def history(self, namespace: str, key: str, min_revision: int | None = None) -> list[Item]:
        """Every version of an item still in history, oldest first (tombstones too)."""
        check_namespace(namespace, stored=True)
        check_key(key)
        self._require(namespace, "read")
        self._await(min_revision, views=False)
        rows = self._core.log.history(namespace, key)
        if not rows:
            raise NotFound("no such item")
        return [row_to_item(r) for r in rows]

    def list(
        self,
        prefix: str = "",
        filter: dict[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        min_revision: int | None = None,
    ) -> ListPage:
        """Live items under a namespace prefix, ordered by (namespace, key), paginated."""
        scopes = self._scopes(prefix, "prefix")
        self._await(min_revision, views=False)
        conds = parse_filter(filter)
        check_int(limit, "limit", 1, MAX_PAGE)
        after = _decode_cursor(cursor) if cursor else None
        rows = self._core.log.list_items(scopes, conds, limit + 1, after, time.time())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].namespace, rows[-1].key) if more else None
        return ListPage(items=[row_to_item(r) for r in rows], cursor=next_cursor)

    def namespaces(
        self,
        prefix: str = "",
        depth: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
        min_revision: int | None = None,
    ) -> NamespacePage:
        """Namespaces under ``prefix`` holding live items the caller may read, with counts.

        ``depth`` cuts every namespace to its first ``depth`` segments (counted from
        the root, as LangGraph's ``max_depth``) and sums the counts beneath; ``None``
        lists each namespace that holds items. Byte order, paginated by ``cursor``. A
        namespace the caller may not read is neither listed nor counted.
        """
        scopes = self._scopes(prefix, "prefix")
        self._await(min_revision, views=False)
        if depth is not None:
            check_int(depth, "depth", 1, 16)
        check_int(limit, "limit", 1, MAX_PAGE)
        after = _decode_namespace_cursor(cursor) if cursor else None
        counts: dict[str, int] = {}
        for ns, n in self._core.log.namespace_counts(scopes, time.time()):
            name = "/".join(ns.split("/")[:depth]) if depth is not None else ns
            counts[name] = counts.get(name, 0) + n
        names = sorted(n for n in counts if after is None or n > after)
        page = names[:limit]
        more = len(names) > limit
        return NamespacePage(
            namespaces=[NamespaceInfo(namespace=n, items=counts[n]) for n in page],
            cursor=_encode_namespace_cursor(page[-1]) if more else None,
        )

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
        """Top-k items by ``vector``, ``keyword`` or ``hybrid`` relevance, best first.

        ``thread`` keeps only the items of that thread; ``at_revision`` ranks the
        versions visible at that revision, exactly (see ``memory/retrieval.py``).
        """
        if mode not in ("vector", "keyword", "hybrid"):
            raise InvalidInput("mode", "must be 'vector', 'keyword' or 'hybrid'")
        check_int(k, "k", 1, MAX_PAGE)
        if query is not None:
            check_text(query, "query", MAX_QUERY_CHARS)
        if mode == "keyword" and not query:
            raise InvalidInput("query", "keyword search needs a query text")
        if query is None and vector is None:
            raise InvalidInput("query", "give a query text or a vector")
        scopes = self._scopes(namespaces, "namespaces")
        conds = parse_filter(filter)
        if thread is not None:
            check_key(thread, "thread")
        if at_revision is not None:
            self._check_revision(at_revision, "at_revision")
        core = self._core
        given = unit_vector(check_vector(vector, core.dim)) if vector is not None else None
        qvec = None
        if mode != "keyword":
            if given is not None:
                qvec = given
            elif core.embedder is not None and query:
                qvec = core.embedder.embed([query])[0]
            elif mode == "vector":
                raise InvalidInput("vector", "this store has no embedder: supply a vector")
        if not scopes:
            return []
        if at_revision is not None:
            found = rank_at(core, at_revision, query, qvec, scopes, conds, k, mode, thread)
            return [build_model(Hit, item=row_to_item(r), score=float(s)) for r, s in found]
        self._await(min_revision, views=True)
        now = time.time()
        ranked = rank_current(core, query, qvec, scopes, conds, k, mode, thread, now)
        return self._hydrate(ranked, scopes, k, now)

    def _hydrate(
        self,
        ranked: builtins.list[tuple[int, float]],
        scopes: builtins.list[str],
        k: int,
        now: float,
    ) -> builtins.list[Hit]:
        """Re-check every hit against the log and the caller's scopes before returning it."""
        log = self._core.log
        hits: builtins.list[Hit] = []
        start, step = 0, k + 8  # most candidates survive: fetch a few more than k
        while start < len(ranked) and len(hits) < k:
            chunk = ranked[start : start + step]
            rows = log.current_rows([i for i, _ in chunk], now)
            for i, score in chunk:
                row = rows.get(i)
                if row is None or not any(in_scope(row.namespace, s) for s in scopes):
                    continue
                hits.append(build_model(Hit, item=row_to_item(row), score=float(score)))
                if len(hits) == k:
                    break
            start += step
        return hits

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
        count_tokens: Callable[[str], int] | None = None,
    ) -> Recall:
        """The best of the top-``k`` hits that fit ``budget_tokens``, as one context.

        Near-duplicates are dropped, items grouped by thread in conversation order, each
        cited (see ``memory/recall.py``). Tokens are the embedding model's own unless
        ``count_tokens`` is given.
        """
        if (
            isinstance(budget_tokens, bool)
            or not isinstance(budget_tokens, int)
            or not 1 <= budget_tokens <= 1_000_000
        ):
            raise InvalidInput("budget_tokens", "must be an integer from 1 to 1000000")
        if count_tokens is not None and not callable(count_tokens):
            raise InvalidInput("count_tokens", "must be a function of a string")
        hits = self.search(
            query,
            namespaces,
            k=k,
            mode=mode,
            filter=filter,
            vector=vector,
            thread=thread,
            at_revision=at_revision,
        )
        vectors: dict[tuple[str, str, int], np.ndarray] = {}
        for hit in hits:
            it = hit.item
            row = self._core.log.get(it.namespace, it.key, it.revision, time.time())
            if row is not None and row.vector is not None:
                vectors[(it.namespace, it.key, it.version)] = np.frombuffer(
                    row.vector, dtype=np.float32
                )
        return pack(hits, vectors, budget_tokens, count_tokens or default_counter())

    # -- watch ---------------------------------------------------------------------
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
    ) -> Subscription:
        """Changes under the prefixes with revision > ``since``: replayed, then live.

        ``thread`` keeps only changes of items in that thread (a delete or expiry is
        delivered when the item it removes was in the thread). With ``query`` (or
        ``vector``) and/or ``filter`` only the changes whose item matches are delivered,
        with the cosine similarity in ``score`` (``threshold`` defaults to
        ``DEFAULT_THRESHOLD``); deletes and expiries of an item whose last version
        matched come too. Iterate it (``for change in sub``) or ``async for``; close it
        when done.
        """
        check_int(since, "since", 0, INT64_MAX, "a revision")
        scopes = self._scopes(namespaces, "namespaces")
        if thread is not None:
            check_key(thread, "thread")
        matcher = self._matcher(query, vector, threshold, filter)
        sub = self._core.hub.subscribe(scopes, since, row_to_change, matcher, thread=thread)
        sub.owner = self.principal
        if matcher is None and thread is None:  # proposals reach plain watches only
            sub.sees_entry = lambda row: self._sees(proposal_of(row))
        return sub

    def _matcher(
        self,
        query: str | None,
        vector: Sequence[float] | None,
        threshold: float | None,
        filter: dict[str, Any] | None,
    ) -> Matcher | None:
        conds = parse_filter(filter)
        if query is not None and not isinstance(query, str):
            raise InvalidInput("query", "must be a string")
        if query is not None and vector is not None:
            raise InvalidInput("vector", "give a query text or a vector, not both")
        if threshold is not None:
            threshold = check_threshold(threshold)
            if query is None and vector is None:
                raise InvalidInput("threshold", "needs a query or a vector")
        qvec = None
        if vector is not None:
            qvec = check_vector(vector, self._core.dim or self._core.index.dim)
            norm = float(np.linalg.norm(qvec))
            if norm == 0:
                raise InvalidInput("vector", "must not be all zeros")
            qvec = qvec / norm
        elif query:
            if self._core.embedder is None:
                raise InvalidInput("query", "this store has no embedder: supply a vector")
            qvec = np.asarray(self._core.embedder.embed([query])[0], dtype=np.float32)
        elif query is not None:
            raise InvalidInput("query", "must not be empty")
        if qvec is None and not conds:
            return None
        limit = DEFAULT_THRESHOLD if threshold is None else threshold
        return Matcher(self._core.log, conds, qvec, limit)

    def awatch(
        self,
        namespaces: Sequence[str] | str | None = None,
        since: int = 0,
        *,
        thread: str | None = None,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        threshold: float | None = None,
        filter: dict[str, Any] | None = None,
    ) -> AsyncIterator[Change]:
        """The async iterator of ``watch``."""
        return self.watch(
            namespaces,
            since,
            thread=thread,
            query=query,
            vector=vector,
            threshold=threshold,
            filter=filter,
        ).__aiter__()

    # -- activity ------------------------------------------------------------------
    def activity(
        self,
        prefix: str = "",
        window: int = 3600,
        bucket: int | None = None,
        depth: int | None = None,
        limit: int = 20,
    ) -> Activity:
        """Writes, conflicts, expiries and lagged watchers over the last ``window``
        seconds, per namespace (cut to ``depth``) and per author, in buckets of
        ``bucket`` seconds (default: about 60 buckets), in readable namespaces only.

        Writes and expiries come from the log; conflicts and lagged watchers are
        recorded by this process since it opened the store (``memory.activity``).
        """
        scopes = self._scopes(prefix, "prefix")
        window, bucket, depth, limit = check_activity_args(window, bucket, depth, limit)
        now = time.time()
        start = float((now - window) // bucket * bucket)
        core = self._core
        counts = core.log.change_counts(scopes, start, float(bucket)) if scopes else []
        rec = core.activity
        return build_activity(
            counts,
            rec.counts(start),
            scopes,
            now=now,
            window=window,
            bucket=bucket,
            depth=depth,
            limit=limit,
            recorded_since=rec.started,
            dropped=rec.dropped,
        )


def _encode_cursor(namespace: str, key: str) -> str:
    raw = json.dumps([namespace, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _encode_namespace_cursor(namespace: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(namespace).encode()).decode().rstrip("=")


def _cursor_json(cursor: Any, what: str) -> Any:
    """The JSON inside a cursor; anything that is not one of ours is a 422 naming it."""
    problem = InvalidInput("cursor", f"is not a cursor returned by {what}")
    if not isinstance(cursor, str) or len(cursor) > 4096 or not cursor.isascii():
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if json_text_depth(raw, 2) > 2:
            raise problem
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        raise problem from None


def _decode_namespace_cursor(cursor: Any) -> str:
    name = _cursor_json(cursor, "namespaces")
    if not isinstance(name, str):
        raise InvalidInput("cursor", "is not a cursor returned by namespaces")
    return check_text(name, "cursor")


def _decode_cursor(cursor: Any) -> tuple[str, str]:
    pair = _cursor_json(cursor, "list")
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
        raise InvalidInput("cursor", "is not a cursor returned by list")
    return check_text(pair[0], "cursor"), check_text(pair[1], "cursor")
