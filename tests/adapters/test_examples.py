"""The examples in ``examples/`` run, over an embedded store and over a server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.adapters.conftest import Side

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_two_langgraph_graphs_share_context_through_a_watch(hash_side: Side) -> None:
    pytest.importorskip("langgraph")
    ex = example("langgraph_agents")
    root = hash_side.root
    for ns in ("agents", "agents-state"):  # the example writes fixed namespaces
        for item in root.list(ns).items:
            root.delete(item.namespace, item.key)
    results = ex.run(hash_side.target())
    finding = "deploy: the freeze ends on Thursday, so deploy on Friday"
    assert results["researcher"]["finding"] == finding
    assert results["planner"] == {
        "topic": "deploy",
        "finding": finding,
        "plan": "Plan: announce the deploy for Friday",
    }
    assert (
        results["planner_state"].checkpoint["channel_values"]["plan"] == results["planner"]["plan"]
    )
    history = root.history("agents/project/deploy", "plan")
    assert history[-1].value["by"] == "planner"


def test_langchain_retriever_in_a_runnable_chain(hash_side: Side) -> None:
    pytest.importorskip("langchain_core")
    ex = example("langchain_retriever")
    for item in hash_side.root.list("team/notes").items:
        hash_side.root.delete(item.namespace, item.key)
    prompt = ex.build_chain(hash_side.target()).invoke("When do we deploy on Friday?")
    lines = prompt.splitlines()
    assert lines[0] == "Context:"
    assert lines[1] == "[deploy] Deploy on Friday after the freeze ends"
    assert "[lunch]" not in prompt  # filtered out by kind
    assert lines[-1] == "Question: When do we deploy on Friday?"


def test_llamaindex_retriever(hash_side: Side) -> None:
    pytest.importorskip("llama_index.core")
    from hivemem.adapters.llamaindex import HivememEmbedding
    from tests.embedders import HashEmbedder

    ex = example("llamaindex_retriever")
    for item in hash_side.root.list("team/handbook").items:
        hash_side.root.delete(item.namespace, item.key)
    got = ex.retrieve(hash_side.target(), "deploy on friday", HivememEmbedding(HashEmbedder()))
    assert got[0] == ("deploy", "Deploy on Friday after the freeze ends")
    assert {doc for doc, _ in got} == {"deploy", "rollback"}  # lunch is not a plan
