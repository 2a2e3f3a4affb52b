"""A loopback TCP proxy that can drop every connection and refuse new ones for a while
(a network outage, as the browser sees it), and records the head of every HTTP request
passing through it (to check what the browser sent: Last-Event-ID, no key in a URL)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading

from tests.client.conftest import free_socket

__all__ = ["RecordingProxy"]

_HEAD_END = b"\r\n\r\n"
_REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) ", re.M)


class RecordingProxy:
    """Forwards 127.0.0.1:<port> to ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.heads: list[str] = []  # request heads, in arrival order
        self.refused = 0  # connections turned away while down
        self._down = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, name="console-proxy", daemon=True).start()

    # -- outage ----------------------------------------------------------------------
    def go_down(self) -> None:
        """Cut every open connection and turn new ones away until ``come_back``."""
        self._down.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def come_back(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self.sock.close()
        self.go_down()

    # -- recorded requests -------------------------------------------------------------
    def requests(self, path_prefix: str = "") -> list[str]:
        """Recorded request heads whose path starts with ``path_prefix``."""
        with self._lock:
            heads = list(self.heads)
        return [h for h in heads if h.split(" ", 2)[1].startswith(path_prefix)]

    # -- plumbing ----------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            if self._down.is_set():
                self.refused += 1
                down.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                down.close()
                continue
            for s in (down, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns += [down, up]
            threading.Thread(target=self._pipe, args=(down, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if record:
                    pending = self._record(pending + data)
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _record(self, buffer: bytes) -> bytes:
        """Keep request heads; bodies are skipped by looking for the next request line."""
        while True:
            start = _REQUEST_LINE.search(buffer)
            if start is None:
                return buffer[-64:]
            end = buffer.find(_HEAD_END, start.start())
            if end < 0:
                return buffer[start.start() :]
            head = buffer[start.start() : end].decode("latin-1")
            with self._lock:
                self.heads.append(head)
            buffer = buffer[end + len(_HEAD_END) :]
