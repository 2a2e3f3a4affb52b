"""Two LangGraph graphs, in two threads, sharing context through hivemem.

The planner graph waits (on hivemem's watch, not by polling) for the researcher's
finding, then writes a plan from it. Both graphs keep their own state in hivemem too
(``HivememSaver``), so one service holds the shared memory and every checkpoint.
Plain deterministic nodes: no language model.

    python examples/langgraph_agents.py
"""

from __future__ import annotations

import threading
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from hivemem import Memory
from hivemem.adapters.langgraph import HivememSaver, HivememStore

SHARED = ("project", "deploy")


class State(TypedDict, total=False):
    topic: str
    finding: str
    plan: str


def research(state: State, runtime: Runtime[Any]) -> State:
    finding = f"{state['topic']}: the freeze ends on Thursday, so deploy on Friday"
    assert runtime.store is not None
    runtime.store.put(SHARED, "finding", {"text": finding, "by": "researcher"})
    return {"finding": finding}


def wait_for_finding(state: State, runtime: Runtime[Any]) -> State:
    store = runtime.store
    assert isinstance(store, HivememStore)
    item = store.wait_for(SHARED, "finding", timeout=30)
    return {"finding": item.value["text"]}


def plan(state: State, runtime: Runtime[Any]) -> State:
    day = state["finding"].rsplit(" ", 1)[-1]
    text = f"Plan: announce the deploy for {day}"
    assert runtime.store is not None
    runtime.store.put(SHARED, "plan", {"text": text, "by": "planner"})
    return {"plan": text}


def researcher_graph(store: HivememStore, saver: HivememSaver) -> Any:
    g = StateGraph(State)
    g.add_node("research", research)
    g.add_edge(START, "research")
    g.add_edge("research", END)
    return g.compile(checkpointer=saver, store=store)


def planner_graph(store: HivememStore, saver: HivememSaver) -> Any:
    g = StateGraph(State)
    g.add_node("wait_for_finding", wait_for_finding)
    g.add_node("plan", plan)
    g.add_edge(START, "wait_for_finding")
    g.add_edge("wait_for_finding", "plan")
    g.add_edge("plan", END)
    return g.compile(checkpointer=saver, store=store)


def run(mem: Any) -> dict[str, Any]:
    """Run both graphs concurrently over ``mem`` (a Memory or a Client)."""
    store = HivememStore(mem, root="agents", index={"fields": ["text"]})
    saver = HivememSaver(mem, root="agents-state")
    results: dict[str, Any] = {}

    def planner() -> None:
        results["planner"] = planner_graph(store, saver).invoke(
            {"topic": "deploy"}, {"configurable": {"thread_id": "planner-1"}}
        )

    waiting = threading.Thread(target=planner)
    waiting.start()  # the planner is already waiting when the researcher starts
    results["researcher"] = researcher_graph(store, saver).invoke(
        {"topic": "deploy"}, {"configurable": {"thread_id": "researcher-1"}}
    )
    waiting.join(timeout=60)
    results["planner_state"] = saver.get_tuple({"configurable": {"thread_id": "planner-1"}})
    return results


def main() -> None:
    with Memory.open(":memory:") as mem:
        results = run(mem)
        print(results["researcher"]["finding"])
        print(results["planner"]["plan"])


if __name__ == "__main__":
    main()
