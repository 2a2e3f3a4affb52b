"""What every request passes before a route sees it: its URL and body as bytes.

Frameworks decode leniently: a path or query string with ``%FF`` becomes U+FFFD (the
key silently changes), and a body that is not UTF-8 or nests too deeply fails inside
a parser as a bare 400 or a recursion error. ``InputGuardMiddleware`` checks the raw
bytes first, with the checkers of ``memory.validation``, and answers 422 naming the
field (``key``, ``namespace``, ``path``, the query parameter, ``body``). A ``%2F`` in the
key of an item path would be split by the router (``/v1/items/team/a%2Fb`` would write
item ``b`` of ``team/a``): a 422 too. In the namespace part ``%2F`` is a separator like
``/`` (``team%2Fx`` is ``team/x``, as OpenAPI clients encode it), which is unambiguous.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivemem.api.problems import problem_response
from hivemem.memory.errors import InvalidInput
from hivemem.memory.validation import MAX_BODY_DEPTH, check_body_json

__all__ = ["InputGuardMiddleware", "check_url"]

_BODY_TYPES = (b"application/json", b"application/x-ndjson", b"application/problem+json")
_ITEM_ROUTES = (b"/v1/items/", b"/v1/history/")


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_url(raw_path: bytes, query: bytes) -> None:
    """Percent-decoded path segments and query parameters must be valid UTF-8, the key
    of an item path holds no ``%2F``, and an item path ends in a key (``/v1/items/team/x/`` would
    otherwise redirect to item ``x`` of ``team``)."""
    if raw_path.endswith(b"/") and raw_path.startswith(_ITEM_ROUTES) and raw_path.count(b"/") > 3:
        raise InvalidInput("key", "must be a non-empty string")
    if b"%" in raw_path or not raw_path.isascii():
        segments = raw_path.split(b"/")
        for i, segment in enumerate(segments):
            decoded = unquote_to_bytes(segment)
            if not _utf8(decoded):
                raise InvalidInput(_path_field(raw_path, i, len(segments)), _NOT_UTF8)
            if b"/" in decoded and i == len(segments) - 1 and raw_path.startswith(_ITEM_ROUTES):
                raise InvalidInput("key", _SLASH)  # the router would split it: another item
    if query and (b"%" in query or not query.isascii()):
        for pair in query.split(b"&"):
            name, _, value = pair.partition(b"=")
            name_bytes = unquote_to_bytes(name.replace(b"+", b" "))
            if not _utf8(name_bytes):
                raise InvalidInput("query", _NOT_UTF8)
            if not _utf8(unquote_to_bytes(value.replace(b"+", b" "))):
                raise InvalidInput(name_bytes.decode("utf-8"), _NOT_UTF8)


_NOT_UTF8 = "is not valid UTF-8 after percent-decoding"
_SLASH = "must not contain '/' (percent-encoded as %2F, it would name another item)"


def _path_field(raw_path: bytes, index: int, count: int) -> str:
    if raw_path.startswith(_ITEM_ROUTES):
        return "key" if index == count - 1 else "namespace"
    if raw_path.startswith(b"/v1/keys/"):
        return "key_id"
    return "path"


class InputGuardMiddleware:
    """422 for a URL that is not UTF-8, or a JSON body that is not UTF-8 or too deep."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_BODY_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            check_url(scope.get("raw_path") or scope["path"].encode(), scope["query_string"])
        except InvalidInput as exc:
            await self._reject(exc, scope, receive, send)
            return
        if scope["type"] != "http" or not self._has_json_body(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:  # the body limit middleware in front bounds what can arrive here
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            check_body_json(body, "body", self.max_depth)
        except InvalidInput as exc:
            await self._reject(exc, scope, receive, send)
            return
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        replay += [m for m in messages if m["type"] != "http.request"]

        async def replaying_receive() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replaying_receive, send)

    @staticmethod
    def _has_json_body(scope: Scope) -> bool:
        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            return False
        for name, value in scope["headers"]:
            if name == b"content-type":
                media = value.split(b";")[0].strip().lower()
                # also every structured-syntax JSON type: json-patch+json,
                # merge-patch+json, vnd.hivemem.update+json
                return media in _BODY_TYPES or media.endswith(b"+json")
        return False

    @staticmethod
    async def _reject(exc: InvalidInput, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4422})
            return
        await problem_response(exc)(scope, receive, send)
