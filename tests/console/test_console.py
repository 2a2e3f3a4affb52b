"""The operator console in headless chromium against a real ``hivemem serve``.

Each test signs in with an API key through the login form, as an operator would, and
checks what the pages show against what other clients wrote through the API.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from hivemem.memory.errors import Conflict, Unauthenticated
from tests.console.conftest import Console, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def sign_in(page: Any, console: Console, key: str, route: str = "feed") -> None:
    page.goto(console.console_url)
    page.fill("#api-key", key)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#who-name:not(:empty)")
    page.goto(f"{console.console_url}#/{route}")
    page.wait_for_selector(f"#page-{route}")


def feed_revisions(page: Any) -> list[int]:
    return [
        int(r)
        for r in page.eval_on_selector_all("#feed-rows tr", "rs => rs.map(r => r.dataset.revision)")
    ]


def wait_live(page: Any) -> None:
    page.wait_for_function("() => document.querySelector('#feed-status').textContent === 'live'")


# -- signing in --------------------------------------------------------------------------


def test_signing_in_with_a_key_shows_who_and_the_pages_the_key_allows(
    page: Any, console: Console
) -> None:
    page.goto(console.console_url)
    page.fill("#api-key", "hm_0123456789abcdef_notarealkeynotarealkeynotarealkey")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login .error")
    assert "401" in page.inner_text("#login .error")
    assert page.is_hidden("#nav")
    screenshot(page, "login")

    sign_in(page, console, console.keys.admin)
    assert page.inner_text("#who-name") == "admin"
    assert page.inner_text("#who-grants") == "admin *"
    assert page.is_visible("#nav-access")
    # the key lives in this tab only, and is never part of a URL the browser requested
    stored = page.evaluate("sessionStorage.getItem('hivemem.console.key')")
    assert stored == console.keys.admin
    for head in console.proxy.requests("/"):
        assert console.keys.admin not in head.split("\r\n", 1)[0]
    page.click("#sign-out")
    page.wait_for_selector("#login")
    assert page.evaluate("sessionStorage.getItem('hivemem.console.key')") is None


# -- live feed ---------------------------------------------------------------------------


def test_a_write_by_another_client_appears_at_the_top_of_the_feed(
    page: Any, console: Console
) -> None:
    sign_in(page, console, console.keys.admin)
    wait_live(page)
    with console.client(console.keys.planner) as planner:
        item = planner.put("team/notes", "standup", {"who": ["planner", "researcher"]})
    row = page.wait_for_selector(f"#feed-rows tr[data-revision='{item.revision}']")
    cells = [c.inner_text() for c in row.query_selector_all("td")]
    assert cells[0] == str(item.revision)
    assert cells[2].lower().startswith("put")
    assert cells[3] == "team/notes / standup"
    assert cells[4] == str(item.version)
    assert cells[5] == "planner"
    assert feed_revisions(page)[0] == item.revision  # newest first
    revisions = feed_revisions(page)
    assert revisions == sorted(revisions, reverse=True)
    screenshot(page, "feed")

    # filters act on what is already on screen, and on what arrives
    page.fill("#feed-author", "researcher")
    assert page.query_selector(f"#feed-rows tr[data-revision='{item.revision}']") is None
    authors = page.eval_on_selector_all("#feed-rows tr", "rs => rs.map(r => r.dataset.author)")
    assert authors and set(authors) == {"researcher"}
    page.fill("#feed-author", "")
    page.fill("#feed-namespace", "team/research")
    namespaces = page.eval_on_selector_all(
        "#feed-rows tr", "rs => rs.map(r => r.dataset.namespace)"
    )
    assert namespaces and set(namespaces) == {"team/research"}
    page.fill("#feed-namespace", "")

    # paused: nothing new is drawn, but nothing is lost either
    page.click("#feed-pause")
    with console.client(console.keys.researcher) as researcher:
        held = researcher.put("team/notes", "standup", {"who": ["researcher"]})
    page.wait_for_function(
        "() => document.querySelector('#feed-status').textContent === 'paused, 1 new'"
    )
    assert page.query_selector(f"#feed-rows tr[data-revision='{held.revision}']") is None
    page.click("#feed-pause")
    page.wait_for_selector(f"#feed-rows tr[data-revision='{held.revision}']")
    assert feed_revisions(page)[0] == held.revision


def test_the_feed_resumes_after_a_dropped_connection_without_gaps_or_repeats(
    page: Any, console: Console
) -> None:
    sign_in(page, console, console.keys.admin)
    wait_live(page)
    with console.client(console.keys.planner) as planner:
        before = planner.put("team/outage", "before", 0)
        page.wait_for_selector(f"#feed-rows tr[data-revision='{before.revision}']")
        watches_before = len(console.proxy.requests("/v1/watch"))
        console.proxy.go_down()  # the stream is cut; reconnects are refused
        try:
            during = [planner.put("team/outage", f"during-{i}", i) for i in range(3)]
            page.wait_for_function(
                "() => document.querySelector('#feed-status').textContent"
                ".startsWith('reconnecting')"
            )
            deadline = time.monotonic() + 15
            while console.proxy.refused == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # stay down until a reconnect has been turned away
        finally:
            console.proxy.come_back()
    last = during[-1].revision
    page.wait_for_selector(f"#feed-rows tr[data-revision='{last}']")
    revisions = feed_revisions(page)
    changes = page.eval_on_selector_all(
        "#feed-rows tr",
        "rs => rs.map(r => [r.dataset.revision, r.dataset.namespace, r.dataset.key])",
    )
    assert len(changes) == len({tuple(c) for c in changes}), "a change was shown twice"
    assert revisions == sorted(revisions, reverse=True)
    for item in during:
        assert item.revision in revisions
    wanted = set(range(before.revision, last + 1))
    assert wanted <= set(revisions), f"missing revisions {sorted(wanted - set(revisions))}"
    # the reconnect asked to resume after the last revision it had, not from scratch
    resumed = console.proxy.requests("/v1/watch")[watches_before:]
    ids = [
        int(m.group(1))
        for head in resumed
        if (m := re.search(r"(?im)^last-event-id: *(\d+)", head))
    ]
    assert ids and ids[-1] >= before.revision
    assert all(console.keys.admin not in h.split("\r\n", 1)[0] for h in resumed)
    assert console.proxy.refused >= 1  # the outage was real: reconnects were turned away


# -- browse ------------------------------------------------------------------------------


def test_browse_shows_the_tree_an_item_its_history_and_a_diff_of_two_versions(
    page: Any, console: Console
) -> None:
    sign_in(page, console, console.keys.admin, "browse")
    team = page.wait_for_selector("#ns-tree a[data-namespace='team']")
    with console.client(console.keys.admin) as admin:
        counts = {n.namespace: n.items for n in admin.namespaces("team").namespaces}
    assert team.query_selector(".count").inner_text() == str(sum(counts.values()))
    assert page.query_selector("#ns-tree a[data-namespace='lab']") is not None  # admin sees all
    page.click("#ns-tree li[data-namespace='team'] > .toggle")
    notes = page.wait_for_selector("#ns-tree a[data-namespace='team/notes']")
    assert notes.query_selector(".count").inner_text() == str(counts["team/notes"])
    notes.click()
    page.click("#item-rows a.item-link:text-is('deploy-plan')")
    page.wait_for_selector("#history")
    assert json.loads(page.inner_text("#item-value"))["window"] == "monday"
    history = page.eval_on_selector_all(
        "#history tbody tr",
        "rs => rs.map(r => [r.dataset.version, r.querySelector('.author').textContent])",
    )
    assert history == [["3", "planner"], ["2", "researcher"], ["1", "planner"]]
    # default: the last two versions side by side, each with its author
    heads = page.eval_on_selector_all("#diff thead th", "ths => ths.map(t => t.textContent)")
    assert heads[0].startswith("version 2") and heads[0].endswith("researcher")
    assert heads[1].startswith("version 3") and heads[1].endswith("planner")
    # pick version 1 against version 3
    page.check("#history tr[data-version='1'] input[name='diff-a']")
    page.wait_for_function(
        "() => document.querySelector('#diff thead th').textContent.startsWith('version 1')"
    )
    removed = page.eval_on_selector_all("#diff td.del", "tds => tds.map(t => t.textContent)")
    added = page.eval_on_selector_all("#diff td.add", "tds => tds.map(t => t.textContent)")
    assert any('"step": 1' in line for line in removed)
    assert any('"step": 3' in line for line in added)
    assert any('"window": "friday"' in line for line in removed)
    assert any('"window": "monday"' in line for line in added)
    assert any('"canary"' in line for line in added)
    unchanged = page.eval_on_selector_all(
        "#diff tr.diff-same td", "tds => tds.map(t => t.textContent)"
    )
    assert any('"owner": "planner"' in line for line in unchanged)
    assert page.is_visible("#item-detail .write-control")  # admin may write here
    screenshot(page, "browse")


def test_an_edit_in_the_console_is_compare_and_swap(page: Any, console: Console) -> None:
    with console.client(console.keys.planner) as planner:
        first = planner.put("team/edits", "doc", {"title": "draft"})
    sign_in(page, console, console.keys.planner, "browse")
    page.goto(f"{console.console_url}#/browse?ns=team/edits&key=doc")
    page.wait_for_selector("#history")
    page.click("#item-detail .item-actions summary")
    with console.client(console.keys.researcher) as researcher:  # someone writes meanwhile
        researcher.put("team/edits", "doc", {"title": "theirs"})
    page.fill("#item-detail textarea[aria-label='Value']", '{"title": "mine"}')
    page.click("#item-detail .item-actions button[type=submit]")
    error = page.wait_for_selector("#item-detail .item-actions .error")
    assert error.inner_text().startswith("409")
    assert "researcher" in error.inner_text()
    with console.client(console.keys.admin) as admin:
        now = admin.get("team/edits", "doc")
        assert now.value == {"title": "theirs"} and now.version == first.version + 1


# -- search ------------------------------------------------------------------------------


def test_search_shows_hits_with_scores_in_every_mode_and_applies_filters(
    page: Any, console: Console
) -> None:
    sign_in(page, console, console.keys.admin, "search")
    page.fill("#search-query", "memory leak in the canary")
    for mode in ("hybrid", "vector", "keyword"):
        page.select_option("#search-mode", mode)
        page.click("#search-form button[type=submit]")
        page.wait_for_selector("#hits tr.hit >> nth=0")
        hits = page.eval_on_selector_all(
            "#hits tr.hit", "rs => rs.map(r => [r.dataset.key, Number(r.dataset.score)])"
        )
        keys = [k for k, _ in hits]
        assert keys[0] in ("finding-0", "deploy-plan"), (mode, hits)
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True)
        shown = page.eval_on_selector_all("#hits .score-value", "e => e.map(x => x.textContent)")
        assert shown == [f"{s:.3f}" for s in scores]
        if mode == "hybrid":
            screenshot(page, "search")
        page.evaluate("document.querySelector('#hits').remove()")
    page.fill("#search-filter", '{"kind": "plan"}')
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#hits tr.hit")
    keys = page.eval_on_selector_all("#hits tr.hit", "rs => rs.map(r => r.dataset.key)")
    assert keys == ["deploy-plan"]
    page.fill("#search-filter", '{"kind": ')
    page.click("#search-form button[type=submit]")
    assert "filter: not valid JSON" in page.inner_text("#search-results .error")


# -- coordination health -------------------------------------------------------------------


def health_cell(page: Any, group: str, name: str, metric: str) -> int:
    cell = page.wait_for_selector(
        f"#health-{group} tr[data-name='{name}'] td[data-metric='{metric}']"
    )
    return int(cell.get_attribute("data-total"))


def test_a_conflict_is_counted_for_its_namespace_and_author(page: Any, console: Console) -> None:
    with console.client(console.keys.planner) as planner:
        planner.put("team/contested", "lock", "planner", if_version=0)
        with pytest.raises(Conflict):
            planner.put("team/contested", "lock", "planner again", if_version=0)
        planner.put("team/contested", "ttl", "short-lived", ttl=0.5)
    time.sleep(1.6)  # the server's reaper commits the expiry within a second
    sign_in(page, console, console.keys.admin, "health")
    page.wait_for_selector("#health-namespaces tr[data-name='team/contested']")
    assert health_cell(page, "namespaces", "team/contested", "conflicts") == 1
    assert health_cell(page, "namespaces", "team/contested", "writes") == 2
    assert health_cell(page, "namespaces", "team/contested", "expiries") == 1
    assert health_cell(page, "authors", "planner", "conflicts") >= 1
    total = page.get_attribute("#health-totals [data-metric='conflicts']", "data-total")
    assert int(total) >= 1
    assert page.query_selector(
        "#health-namespaces tr[data-name='team/contested'] svg.chart-conflicts rect"
    )
    # grouped by the first segment, the same conflict counts under 'team'
    page.select_option("#health-depth", "1")
    page.wait_for_selector("#health-namespaces tr[data-name='team/contested']", state="detached")
    assert health_cell(page, "namespaces", "team", "conflicts") >= 1
    screenshot(page, "health")


# -- permissions -------------------------------------------------------------------------


def test_a_read_only_key_sees_no_write_controls_and_no_other_namespaces(
    page: Any, console: Console
) -> None:
    with console.client(console.keys.stranger) as stranger:
        stranger.put("lab/secret", "formula", {"x": 43})
        with pytest.raises(Conflict):
            stranger.put("lab/secret", "formula", {"x": 44}, if_version=1)
    sign_in(page, console, console.keys.reader, "browse")
    assert page.inner_text("#who-name") == "reader"
    assert page.is_hidden("#nav-access")
    page.wait_for_selector("#ns-tree a[data-namespace='team']")
    tree = page.eval_on_selector_all("#ns-tree a", "as => as.map(a => a.dataset.namespace)")
    assert "lab" not in tree and not any(n.startswith("lab") for n in tree)
    page.goto(f"{console.console_url}#/browse?ns=team/notes&key=deploy-plan")
    page.wait_for_selector("#history")
    assert page.query_selector(".write-control") is None
    assert page.query_selector("#delete-item") is None
    assert page.query_selector("#item-detail textarea") is None
    screenshot(page, "browse-read-only")
    # a namespace it may not read is not there, exactly like a missing one
    page.goto(f"{console.console_url}#/browse?ns=lab/secret&key=formula")
    page.wait_for_selector("#item-detail .error")
    assert "404" in page.inner_text("#item-detail .error")

    page.goto(f"{console.console_url}#/feed")
    wait_live(page)
    with console.client(console.keys.stranger) as stranger:
        hidden = stranger.put("lab/secret", "formula", {"x": 45})
    with console.client(console.keys.planner) as planner:
        shown = planner.put("team/notes", "for-readers", 1)
    page.wait_for_selector(f"#feed-rows tr[data-revision='{shown.revision}']")
    assert page.query_selector(f"#feed-rows tr[data-revision='{hidden.revision}']") is None
    namespaces = page.eval_on_selector_all(
        "#feed-rows tr", "rs => rs.map(r => r.dataset.namespace)"
    )
    assert namespaces and all(n.startswith("team") for n in namespaces)

    page.goto(f"{console.console_url}#/health")
    page.wait_for_selector("#health-namespaces tbody tr")
    names = page.eval_on_selector_all(
        "#health-namespaces tbody tr", "rs => rs.map(r => r.dataset.name)"
    )
    authors = page.eval_on_selector_all(
        "#health-authors tbody tr", "rs => rs.map(r => r.dataset.name)"
    )
    assert names and all(n.startswith("team") for n in names)
    assert "stranger" not in authors and "planner" in authors
    page.goto(f"{console.console_url}#/access")  # not offered, and not reachable by URL
    page.wait_for_selector("#page-feed")


# -- access ------------------------------------------------------------------------------


def test_an_admin_grants_creates_a_key_and_revokes_both(page: Any, console: Console) -> None:
    sign_in(page, console, console.keys.admin, "access")
    page.wait_for_selector("#principals tr[data-principal='planner']")
    principals = page.eval_on_selector_all(
        "#principals tbody tr", "rs => rs.map(r => r.dataset.principal)"
    )
    assert {"admin", "planner", "researcher", "reader", "stranger"} <= set(principals)
    page.fill("#grant-form input[name=principal]", "newbie")
    page.fill("#grant-form input[name=prefix]", "team/notes")
    page.select_option("#grant-form select[name=permission]", "read")
    page.click("#grant-form button[type=submit]")
    page.wait_for_selector(
        "#principals tr[data-principal='newbie'] .chip[data-prefix='team/notes']"
    )

    page.fill("#key-form input[name=principal]", "newbie")
    page.click("#key-form button[type=submit]")
    secret = page.wait_for_selector("#secret-value").inner_text()
    with console.client(secret) as newbie:
        assert newbie.principal == "newbie"
        assert [n.namespace for n in newbie.namespaces().namespaces] == ["team/notes"]
    screenshot(page, "access")

    key_id = secret.split("_")[1]
    page.click(f"#keys tr[data-key='{key_id}'] .revoke-key")
    page.wait_for_selector(f"#keys tr.revoked[data-key='{key_id}']")
    time.sleep(1.1)  # revocations reach every cache within a second
    with console.client(secret) as newbie, pytest.raises(Unauthenticated):
        newbie.namespaces()
    page.click("#principals tr[data-principal='newbie'] .revoke-grant")
    page.wait_for_function(
        "() => !document.querySelector(\"#principals tr[data-principal='newbie'] .chip\")"
    )
    with console.client(console.keys.admin) as admin:
        assert admin.grants("newbie") == []
