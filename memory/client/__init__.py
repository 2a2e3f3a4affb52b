"""HTTP clients for a hivemem server, with the same methods and errors as ``Memory``.

    from hivemem.memory.client import Client
    with Client("http://127.0.0.1:8080", api_key="hm_...") as mem:
        mem.put("team/notes", "plan", {"step": 1})

``AsyncClient`` is its asyncio twin. Both take an injected ``httpx`` client or
transport (``httpx.MockTransport`` in tests).
"""

from hivemem.memory.client._async import AsyncClient, AsyncWatchStream
from hivemem.memory.client._sync import Client, WatchStream

__all__ = ["Client", "AsyncClient", "WatchStream", "AsyncWatchStream"]
