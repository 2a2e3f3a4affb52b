"""``HivememChatMessageHistory``: a conversation as items, one per message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from hivemem.adapters._common import (
    Target,
    delete_present,
    encode_key,
    join_namespace,
    list_all,
    message_keys,
    to_thread,
)

__all__ = ["HivememChatMessageHistory"]


class HivememChatMessageHistory(BaseChatMessageHistory):
    """The messages of one session, stored under ``namespace/<session>``.

    Each message is one item (its ``message_to_dict`` form as the value, its text as
    the item's text, ``role`` and ``session`` as metadata), so a conversation is
    searchable, watchable and versioned like anything else in hivemem. Messages read
    back in the order they were added.

    The messages are one hivemem thread (named by the session id, encoded as a key), so
    the keyword index reads each message with the messages before it, and
    ``search(..., thread=history.thread)`` keeps to this conversation.
    """

    def __init__(self, memory: Target, namespace: str, session_id: str) -> None:
        self.memory = memory
        self.session_id = session_id
        self.namespace = join_namespace(namespace, [session_id])
        self.thread = encode_key(session_id)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the session, oldest first."""
        items = list_all(self.memory, self.namespace)
        return messages_from_dict([item.value for item in items])

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one revision."""
        keys = message_keys(len(messages))
        ops: list[dict[str, Any]] = []
        for key, message in zip(keys, messages, strict=True):
            text = message.content if isinstance(message.content, str) else message.text
            ops.append(
                {
                    "namespace": self.namespace,
                    "key": key,
                    "value": message_to_dict(message),
                    "text": text,
                    "metadata": {"role": message.type, "session": self.session_id},
                    "thread": self.thread,
                }
            )
        if ops:
            self.memory.put_many(ops)

    def clear(self) -> None:
        """Delete every message of the session (their history stays in the log)."""
        keys = [(self.namespace, item.key) for item in list_all(self.memory, self.namespace)]
        for start in range(0, len(keys), 500):
            delete_present(self.memory, keys[start : start + 500])

    async def aget_messages(self) -> list[BaseMessage]:
        """Async twin of ``messages``."""
        return await to_thread(lambda: self.messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async twin of ``add_messages``."""
        await to_thread(self.add_messages, list(messages))

    async def aclear(self) -> None:
        """Async twin of ``clear``."""
        await to_thread(self.clear)
