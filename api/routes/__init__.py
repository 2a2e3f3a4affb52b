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

# Routes are matched in this order, each costing a path match: the hot write (PATCH of an
# item: shared counters) comes first, so it does not pay for the item routes that share
# its path and only partly match. No PATCH route elsewhere overlaps it.
ROUTERS = [
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
