"""recall: the best hits that fit a token budget, deduplicated, threads in order, cited."""

from __future__ import annotations

import pytest

from hivemem.memory import Memory
from hivemem.memory.errors import InvalidInput
from hivemem.memory.recall import DUPLICATE_COSINE, entry_text


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def chat(sqlite_mem: Memory) -> Memory:
    m = sqlite_mem
    m.put("team/chat", "t1", "Caroline adopted a puppy named Biscuit", thread="s1")
    m.put("team/chat", "t2", "Melanie asked what breed the puppy is", thread="s1")
    m.put("team/chat", "t3", "Caroline said the puppy is a beagle", thread="s1")
    m.put("team/notes", "n1", "The puppy needs a vet visit on Monday")
    m.put("team/notes", "n2", "The puppy needs a vet visit on Monday")  # a duplicate
    m.put("team/notes", "n3", "Quarterly taxes are due in April")
    return m


def test_recall_packs_cited_items_within_the_budget(chat: Memory) -> None:
    found = chat.recall("puppy", ["team"], budget_tokens=60, count_tokens=words)
    assert found.tokens == words(found.context) <= 60
    assert found.items
    for entry in found.items:
        c = entry.citation
        assert (c.namespace, c.key, c.version, c.revision, c.author) == (
            entry.item.namespace,
            entry.item.key,
            entry.item.version,
            entry.item.revision,
            "admin",
        )
        assert entry_text_in(found.context, entry.item.key)


def entry_text_in(context: str, key: str) -> bool:
    return f"/{key} v" in context


def test_recall_drops_near_duplicates(chat: Memory) -> None:
    found = chat.recall("vet visit puppy", ["team/notes"], budget_tokens=500, count_tokens=words)
    keys = [e.item.key for e in found.items]
    assert len({"n1", "n2"} & set(keys)) == 1
    assert DUPLICATE_COSINE < 1


def test_recall_groups_a_thread_in_conversation_order(chat: Memory) -> None:
    found = chat.recall("Caroline puppy beagle", ["team/chat"], budget_tokens=500)
    assert [e.item.key for e in found.items] == ["t1", "t2", "t3"]
    assert found.context.startswith("## thread s1 in team/chat\n")
    assert (
        found.context.index("/t1 v") < found.context.index("/t2 v") < found.context.index("/t3 v")
    )


def test_recall_says_when_a_better_hit_did_not_fit(chat: Memory) -> None:
    hits = chat.search("puppy", ["team"], k=20)
    smallest = min(words(entry_text(h)) + 1 for h in hits)
    found = chat.recall("puppy", ["team"], budget_tokens=smallest + 1, count_tokens=words)
    assert found.truncated
    assert len(found.items) <= 1
    everything = chat.recall("puppy", ["team"], budget_tokens=10_000, count_tokens=words)
    assert not everything.truncated


def test_recall_counts_with_the_models_own_tokenizer_by_default(chat: Memory) -> None:
    from hivemem.memory.embed_onnx import count_tokens

    found = chat.recall("puppy", ["team"], budget_tokens=40)
    assert found.tokens == count_tokens(found.context) <= 40
    assert sum(e.tokens for e in found.items) <= found.tokens


def test_the_models_count_of_the_context_is_the_sum_of_its_lines(chat: Memory) -> None:
    """The default counter is not run on the whole context: its sum must be exact."""
    from hivemem.memory.embed_onnx import count_tokens

    chat.put("team/chat", "t4", "Émile: «naïve» café—tokens; don't split me wrong!", thread="s1")
    chat.put("team/chat", "t5", "x" * 300 + " " + "日本語のテキスト", thread="s1")
    for budget in (5, 12, 20, 33, 47, 60, 90, 150, 400):
        found = chat.recall("puppy Caroline café", ["team"], budget_tokens=budget)
        assert found.tokens == count_tokens(found.context) <= budget


def test_each_text_is_counted_once(chat: Memory) -> None:
    from collections import Counter

    seen: Counter[str] = Counter()

    def counting(text: str) -> int:
        seen[text] += 1
        return words(text)

    found = chat.recall("puppy", ["team"], budget_tokens=10_000, count_tokens=counting)
    assert len(found.items) >= 4
    assert set(seen.values()) == {1}


def test_recall_as_of_a_revision_cites_what_was_there(chat: Memory) -> None:
    at = chat.revision
    chat.put("team/chat", "t1", "Caroline gave the dog away", thread="s1")
    found = chat.recall("Biscuit", ["team/chat"], at_revision=at, count_tokens=words)
    assert "Biscuit" in found.context
    assert all(e.citation.revision <= at for e in found.items)


def test_recall_rejects_a_bad_budget(chat: Memory) -> None:
    with pytest.raises(InvalidInput) as err:
        chat.recall("puppy", ["team"], budget_tokens=0)
    assert err.value.field == "budget_tokens"
