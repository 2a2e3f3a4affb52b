"""``HivememChatStore``: LlamaIndex's ``BaseChatStore``, one item per message."""

from __future__ import annotations

from typing import Any

from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store.base import BaseChatStore
from pydantic import PrivateAttr

from hivemem.adapters._common import (
    Target,
    decode_label,
    delete_present,
    encode_key,
    join_namespace,
    list_all,
    message_keys,
)
from hivemem.memory.models import Item

__all__ = ["HivememChatStore"]


class HivememChatStore(BaseChatStore):
    """The messages of each chat key under ``namespace/<key>``, in the order added.

    A message is an item (``ChatMessage.model_dump`` as the value, its text as the
    item's text, ``role`` and ``chat`` as metadata): conversations are searchable,
    watchable and versioned like anything else in hivemem. Each chat is one hivemem
    thread named by its key (encoded as a key: ``thread_of(key)``), so the keyword index
    reads each message with the messages before it.
    """

    namespace: str
    _memory: Any = PrivateAttr()

    def __init__(self, memory: Target, namespace: str, **kwargs: Any) -> None:
        super().__init__(namespace=namespace, **kwargs)  # type: ignore[call-arg]  # a field of ours
        self._memory = memory

    @classmethod
    def class_name(cls) -> str:
        return "HivememChatStore"

    @staticmethod
    def thread_of(key: str) -> str:
        """The hivemem thread the chat ``key``'s messages are written to."""
        return encode_key(key)

    def _ns(self, key: str) -> str:
        return join_namespace(self.namespace, [key])

    def _items(self, key: str) -> list[Item]:
        return list(list_all(self._memory, self._ns(key)))

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Replace the chat's messages (old ones become history)."""
        self.delete_messages(key)
        self._append(key, messages)

    def _append(self, key: str, messages: list[ChatMessage]) -> None:
        ops = []
        for item_key, message in zip(message_keys(len(messages)), messages, strict=True):
            ops.append(
                {
                    "namespace": self._ns(key),
                    "key": item_key,
                    "value": message.model_dump(mode="json"),
                    "text": message.content or "",
                    "metadata": {"role": str(message.role.value), "chat": key},
                    "thread": self.thread_of(key),
                }
            )
        if ops:
            self._memory.put_many(ops)

    def get_messages(self, key: str) -> list[ChatMessage]:
        """The chat's messages, oldest first."""
        return [ChatMessage.model_validate(i.value) for i in self._items(key)]

    def add_message(self, key: str, message: ChatMessage, idx: int | None = None) -> None:
        """Append a message (``idx`` inserting elsewhere is not supported)."""
        if idx is not None and idx != len(self._items(key)):
            from hivemem.memory.errors import InvalidInput

            raise InvalidInput("idx", "messages can only be appended")
        self._append(key, [message])

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        """Delete the chat; returns its messages (None if it had none)."""
        items = self._items(key)
        if not items:
            return None
        delete_present(self._memory, [(i.namespace, i.key) for i in items])
        return [ChatMessage.model_validate(i.value) for i in items]

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Delete the ``idx``-th message; returns it (None if there is none)."""
        items = self._items(key)
        if not 0 <= idx < len(items):
            return None
        delete_present(self._memory, [(items[idx].namespace, items[idx].key)])
        return ChatMessage.model_validate(items[idx].value)

    def delete_last_message(self, key: str) -> ChatMessage | None:
        """Delete the newest message; returns it (None if there is none)."""
        items = self._items(key)
        return self.delete_message(key, len(items) - 1) if items else None

    def get_keys(self) -> list[str]:
        """Every chat key that holds messages."""
        depth = self.namespace.count("/") + 2
        keys, cursor = [], None
        while True:
            page = self._memory.namespaces(self.namespace, depth=depth, limit=1000, cursor=cursor)
            keys += [
                decode_label(i.namespace.rsplit("/", 1)[-1])
                for i in page.namespaces
                if i.namespace != self.namespace
            ]
            cursor = page.cursor
            if cursor is None:
                return keys
