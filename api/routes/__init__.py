"""One router per resource; ``ROUTERS`` is what the app mounts."""

from __future__ import annotations

from hivemem.api.routes import (
    access,
    activity,
    claims,
    health,
    items,
    leases,
    maintenance,
    proposals,
    search,
    txn,
    update,
    watch,
)

__all__ = ["ROUTERS"]

ROUTERS = [
    items.router,
    update.router,
    search.router,
    txn.router,
    watch.router,
    leases.router,
    claims.router,
    proposals.router,
    maintenance.router,
    access.router,
    activity.router,
    health.router,
]
