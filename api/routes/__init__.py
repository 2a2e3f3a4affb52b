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

# Routes are matched in this order, and a route sharing the path of the one asked for
# costs a partial match: get-by-key (the hottest read) and PATCH of an item (the hot
# write of shared counters) come first. Neither overlaps another route of its method.
ROUTERS = [
    items.key_reads,
    update.router,
    items.router,
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
