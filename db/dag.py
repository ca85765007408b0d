"""Job graphs: dependency order and cycles. Jobs are anything with `key` and `depends_on`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable


class GraphError(ValueError):
    """A job graph that cannot be run: duplicate keys, unknown dependencies, a cycle."""


def topological(jobs: list) -> list:
    """Jobs ordered dependencies first; a duplicate key, an unknown dependency or a cycle is refused."""
    by_key: dict[str, Any] = {}
    for job in jobs:
        if job.key in by_key:
            raise GraphError(f"two jobs share the key {job.key!r}")
        by_key[job.key] = job
    for job in jobs:
        unknown = [d for d in job.depends_on if d not in by_key]
        if unknown:
            raise GraphError(f"job {job.key!r} depends on {unknown[0]!r}, which is not in the submission")
    cycle = find_cycle([(j.key, d) for j in jobs for d in j.depends_on])
    if cycle:
        raise GraphError("dependency cycle: " + " -> ".join(map(str, cycle + [cycle[0]])))
    ordered, seen = [], set()

    def visit(job: Any) -> None:
        if job.key in seen:
            return
        seen.add(job.key)
        for d in job.depends_on:
            visit(by_key[d])
        ordered.append(job)

    for job in jobs:
        visit(job)
    return ordered


def find_cycle(edges: Iterable[tuple[Any, Any]]) -> list[Any]:
    """One cycle in a directed graph given as (node, depends_on) edges, or []."""
    graph: dict[Any, list[Any]] = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    state: dict[Any, int] = {}  # 1 = on the current path, 2 = done
    path: list[Any] = []

    def visit(node: Any) -> list[Any]:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt):]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in list(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []
