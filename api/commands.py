"""The ``hivemem`` client commands: one function per subcommand that talks to a server
(``put``, ``get``, ``search``, ``export``, …), with their output and progress helpers.

Each command takes the ``Client``, the parsed arguments and stdout; results are JSON
(lists as JSON Lines).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from hivemem.memory.client import Client
from hivemem.memory.errors import InvalidInput, NotFound

__all__ = ["Command", "Progress", "keepalive_stream"]


# -- progress --------------------------------------------------------------------------


class Progress:
    """A one-line counter on stderr: records, rate and elapsed time."""

    def __init__(self, label: str, enabled: bool, stream: IO[str] | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.count = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        line = (
            f"\r{self.label}: {self.count:,} records  {self.count / elapsed:,.0f}/s  "
            f"{int(elapsed) // 60:d}:{elapsed % 60:04.1f}"
        )
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def _progress(args: argparse.Namespace, label: str) -> Progress:
    return Progress(label, bool(args.progress) or sys.stderr.isatty())


# -- output --------------------------------------------------------------------------


def _emit(obj: Any, out: IO[str]) -> None:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _json_arg(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidInput(
            name, f"is not JSON: {raw!r} (quote a string value: '\"text\"')"
        ) from None


# -- client commands ---------------------------------------------------------------


def _put(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    item = c.put(
        a.namespace,
        a.key,
        _json_arg(a.value, "VALUE_JSON"),
        text=a.text,
        metadata=_json_arg(a.metadata, "--metadata") if a.metadata is not None else None,
        if_version=a.if_version,
        merge=a.merge,
        base_version=a.base_version,
        on_conflict=a.on_conflict,
        ttl=a.ttl,
        lease=a.lease,
        fence=a.fence,
        thread=a.thread,
    )
    _emit(item, out)


def _update(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    item = c.update(
        a.namespace,
        a.key,
        _json_arg(a.ops, "OPS_JSON"),
        if_version=a.if_version,
        create=not a.no_create,
        text=a.text,
        metadata=_json_arg(a.metadata, "--metadata") if a.metadata is not None else None,
        ttl=a.ttl,
    )
    _emit(item, out)


def _get(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    item = c.get(a.namespace, a.key, at_revision=a.at_revision, min_revision=a.min_revision)
    _emit(item, out)


def _delete(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.delete(a.namespace, a.key, if_version=a.if_version, fence=a.fence), out)


def _history(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    for item in c.history(a.namespace, a.key):
        _emit(item, out)


def _list(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    left, cursor = a.limit, None
    while left > 0:
        page = c.list(a.prefix, filter=filt, limit=min(left, 1000), cursor=cursor)
        for item in page.items:
            _emit(item, out)
        left -= len(page.items)
        cursor = page.cursor
        if cursor is None:
            return


def _namespaces(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    cursor = None
    while True:
        page = c.namespaces(a.prefix, depth=a.depth, limit=1000, cursor=cursor)
        for info in page.namespaces:
            _emit(info, out)
        cursor = page.cursor
        if cursor is None:
            return


def _activity(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    report = c.activity(a.prefix, window=a.window, bucket=a.bucket, depth=a.depth, limit=a.limit)
    if not a.totals:
        _emit(report, out)
        return
    metrics = ("writes", "conflicts", "expiries", "lagged")
    for group, series in (("namespace", report.namespaces), ("author", report.authors)):
        for s in series:
            sums = {m: sum(getattr(s, m)) for m in metrics}
            _emit({group: s.name, **sums}, out)


def _search(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    hits = c.search(
        a.query,
        namespaces=a.ns,
        k=a.k,
        mode=a.mode,
        filter=filt,
        thread=a.thread,
        at_revision=a.at_revision,
        min_revision=a.min_revision,
    )
    for hit in hits:
        _emit(hit, out)


def _recall(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    found = c.recall(
        a.query,
        namespaces=a.ns,
        budget_tokens=a.budget,
        k=a.k,
        mode=a.mode,
        filter=filt,
        thread=a.thread,
        at_revision=a.at_revision,
    )
    if a.json:
        _emit(found, out)
    else:
        out.write(found.context + "\n")


def _watch(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    with c.watch(
        a.ns, since=a.since, thread=a.thread, query=a.query, threshold=a.threshold, filter=filt
    ) as stream:
        for change in stream:
            out.write(change.model_dump_json() + "\n")
            out.flush()


def _lease(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.lease(a.ttl), out)


def _keepalive(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    if not a.stream:
        _emit(c.keepalive(a.lease_id), out)
        return
    keepalive_stream(c, a.lease_id, out, every=a.every)


def keepalive_stream(
    c: Client, lease_id: str, out: IO[str], every: float | None = None, count: int | None = None
) -> None:
    """Renew over the WebSocket stream every ``every`` seconds (ttl / 3 by default) until
    interrupted (or ``count`` renewals); closing only stops renewing, it does not revoke."""
    from urllib.parse import quote

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from hivemem.memory.client._wire import error_from_problem
    from hivemem.memory.models import Lease

    url = c.base_url.replace("http", "ws", 1) + f"/v1/leases/{quote(lease_id, safe='')}"
    headers = {"Authorization": f"Bearer {c.api_key}"} if c.api_key else {}
    done = 0
    with connect(url + "/keepalive/ws", additional_headers=headers) as ws:
        while count is None or done < count:
            ws.send("{}")
            try:
                body = json.loads(ws.recv())
            except ConnectionClosed:
                raise InvalidInput("lease_id", "the server closed the keepalive stream") from None
            if "error" in body:
                raise error_from_problem(0, body["error"])
            lease = Lease.model_validate(body)
            out.write(lease.model_dump_json() + "\n")
            out.flush()
            done += 1
            if count is None or done < count:
                time.sleep(every if every is not None else max(lease.ttl / 3, 0.05))


def _claim(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    got = c.claim(
        a.namespace,
        a.key,
        lease=a.lease,
        ttl=a.ttl,
        filter=_json_arg(a.filter, "--filter") if a.filter is not None else None,
        max_attempts=a.max_attempts,
    )
    if got is None:
        raise NotFound("no open task to claim")
    _emit(got, out)


def _complete(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    value = _json_arg(a.value, "VALUE_JSON") if a.value is not None else None
    _emit(c.complete(a.token, value), out)


def _release(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.release(a.token), out)


def _proposals(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    for p in c.proposals(a.prefix, status=None if a.status == "any" else a.status, limit=a.limit):
        _emit(p, out)


def _approve(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.approve(a.proposal_id, a.reason), out)


def _reject(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.reject(a.proposal_id, a.reason), out)


def _revoke_lease(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    c.revoke_lease(a.lease_id)


def _get_lease(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.get_lease(a.lease_id), out)


def _keys(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    if a.keys_command == "create":
        _emit(c.create_key(a.principal), out)
    elif a.keys_command == "revoke":
        c.revoke_key(a.id)
    else:
        for info in c.keys(a.principal):
            _emit(info, out)


def _grant(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    if a.revoke:
        c.revoke(a.principal, a.prefix)
    elif a.permission is None:
        raise InvalidInput(
            "PERMISSION", "is required (read, propose, write or admin) unless --revoke"
        )
    else:
        _emit(c.grant(a.principal, a.prefix, a.permission), out)


def _grants(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    for g in c.grants(a.principal):
        _emit(g, out)


def _whoami(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit({"principal": c.principal, "url": c.base_url}, out)


def _export(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    progress = _progress(a, "export")
    target = open(a.output, "w", encoding="utf-8") if a.output else out  # noqa: SIM115
    try:
        for n, record in enumerate(c.export(a.prefix, vectors=not a.no_vectors), 1):
            target.write(json.dumps(record, ensure_ascii=False) + "\n")
            progress.update(n)
    finally:
        if target is not out:
            target.close()
        progress.close()


def _records(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                raise InvalidInput("FILE", f"line {n} is not JSON") from None


def _import(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    from hivemem.memory.client._wire import import_chunks

    progress = _progress(a, "import")
    source = sys.stdin if a.file == "-" else open(a.file, encoding="utf-8")  # noqa: SIM115
    total = 0
    try:
        for chunk in import_chunks(_records(source), a.batch):
            total += c.import_items(chunk, batch=a.batch)
            progress.update(total)
    finally:
        if source is not sys.stdin:
            source.close()
        progress.close()
    _emit({"imported": total}, out)


Command = Callable[[Client, argparse.Namespace, IO[str]], None]
