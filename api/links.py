"""OpenAPI links: which response feeds which next request.

A link says "the item this ``PUT`` answered can be read, patched, deleted and listed
with these parameters" in the document itself, so generated clients and stateful
fuzzers (schemathesis, ``tests/api/test_schema_fuzz.py``) can chain calls the way an
agent does: write, read back, change, delete; grant a lease, renew, revoke; claim a
task, complete or release it; propose, review.
"""

from __future__ import annotations

from typing import Any

__all__ = ["document_links", "LINKS"]

ITEM = "/v1/items/{namespace}/{key}"
HISTORY = "/v1/history/{namespace}/{key}"
LEASE = "/v1/leases/{lease_id}"
PROPOSAL = "/v1/proposals/{proposal_id}"

_OF_ITEM = {"namespace": "$response.body#/namespace", "key": "$response.body#/key"}
_OF_FIRST = {"namespace": "$response.body#/0/namespace", "key": "$response.body#/0/key"}
_OF_CLAIMED = {
    "namespace": "$response.body#/item/namespace",
    "key": "$response.body#/item/key",
}
_VERSION = {"if_version": "$response.body#/version"}


def _item_links(where: dict[str, str], cas: bool = True) -> dict[str, dict[str, Any]]:
    """Read, patch, delete, history and list of the item named by ``where``."""
    version = {"if_version": where["key"].replace("/key", "/version")} if cas else {}
    return {
        "GetItem": {"op": ("get", ITEM), "parameters": where},
        "GetItemAtRevision": {
            "op": ("get", ITEM),
            "parameters": {**where, "at_revision": where["key"].replace("/key", "/revision")},
        },
        "GetHistory": {"op": ("get", HISTORY), "parameters": where},
        "PatchItem": {"op": ("patch", ITEM), "parameters": {**where, **version}},
        "DeleteItem": {"op": ("delete", ITEM), "parameters": {**where, **version}},
        "ListNamespace": {
            "op": ("get", "/v1/items"),
            "parameters": {"prefix": where["namespace"]},
        },
    }


_PROPOSAL = {"proposal_id": "$response.body#/id"}
_PROPOSAL_LINKS = {
    "GetProposal": {"op": ("get", PROPOSAL), "parameters": _PROPOSAL},
    "ApproveProposal": {"op": ("post", PROPOSAL + "/approve"), "parameters": _PROPOSAL},
    "RejectProposal": {"op": ("post", PROPOSAL + "/reject"), "parameters": _PROPOSAL},
}
_LEASE = {"lease_id": "$response.body#/id"}
_TOKEN = {"token": "$response.body#/token"}

#: (method, path, status) -> {link name: {"op": (method, path), "parameters", "requestBody"}}
LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("put", ITEM, "200"): _item_links(_OF_ITEM),
    ("put", ITEM, "202"): _PROPOSAL_LINKS,
    ("patch", ITEM, "200"): _item_links(_OF_ITEM),
    ("patch", ITEM, "202"): _PROPOSAL_LINKS,
    ("get", ITEM, "200"): _item_links(_OF_ITEM),
    ("delete", ITEM, "200"): {
        "GetHistory": {"op": ("get", HISTORY), "parameters": _OF_ITEM},
        "GetDeleted": {"op": ("get", ITEM), "parameters": _OF_ITEM},
    },
    ("delete", ITEM, "202"): _PROPOSAL_LINKS,
    ("post", "/v1/batch", "200"): _item_links(_OF_FIRST, cas=False),
    ("post", "/v1/leases", "201"): {
        "GetLease": {"op": ("get", LEASE), "parameters": _LEASE},
        "KeepaliveLease": {"op": ("post", LEASE + "/keepalive"), "parameters": _LEASE},
        "RevokeLease": {"op": ("delete", LEASE), "parameters": _LEASE},
    },
    ("post", "/v1/claims", "200"): {
        "CompleteClaim": {"op": ("post", "/v1/claims/complete"), "requestBody": _TOKEN},
        "ReleaseClaim": {"op": ("post", "/v1/claims/release"), "requestBody": _TOKEN},
        "GetClaimedItem": {"op": ("get", ITEM), "parameters": _OF_CLAIMED},
        "GetClaimLease": {
            "op": ("get", LEASE),
            "parameters": {"lease_id": "$response.body#/lease"},
        },
    },
    ("post", PROPOSAL + "/approve", "200"): {
        "GetProposal": {"op": ("get", PROPOSAL), "parameters": _PROPOSAL},
    },
    ("post", PROPOSAL + "/reject", "200"): {
        "GetProposal": {"op": ("get", PROPOSAL), "parameters": _PROPOSAL},
    },
    ("post", "/v1/keys", "201"): {
        "RevokeKey": {
            "op": ("delete", "/v1/keys/{key_id}"),
            "parameters": {"key_id": "$response.body#/id"},
        },
        "ListKeys": {
            "op": ("get", "/v1/keys"),
            "parameters": {"principal": "$response.body#/principal"},
        },
    },
    ("put", "/v1/grants", "200"): {
        "ListGrants": {
            "op": ("get", "/v1/grants"),
            "parameters": {"principal": "$response.body#/principal"},
        },
        "DeleteGrant": {
            "op": ("delete", "/v1/grants"),
            "parameters": {
                "principal": "$response.body#/principal",
                "prefix": "$response.body#/prefix",
            },
        },
    },
}


def document_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Add ``LINKS`` to the responses of ``schema`` (operations absent are skipped)."""
    paths = schema.get("paths", {})
    for (method, path, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        out = response.setdefault("links", {})
        for name, link in links.items():
            target_method, target_path = link["op"]
            target = paths.get(target_path, {}).get(target_method)
            if target is None:
                continue
            entry: dict[str, Any] = {"operationId": target["operationId"]}
            known = {p["name"] for p in target.get("parameters", [])}
            params = {k: v for k, v in link.get("parameters", {}).items() if k in known}
            if params:
                entry["parameters"] = params
            if "requestBody" in link:
                entry["requestBody"] = link["requestBody"]
            out[name] = entry
    return schema
