"""What a process keeps in memory between jobs: the least recently used dropped first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any


class LeastRecentlyUsed:
    """key -> value; once the values' total `size` (1 each unless given) passes `limit`, the least
    recently used (read or written) go first."""

    def __init__(self, limit: float, size: Callable[[Any], float] = lambda value: 1):
        self.limit, self.size = limit, size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
        return self.items.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while self.items and sum(map(self.size, self.items.values())) > self.limit:
            self.items.popitem(last=False)

    def keys(self) -> list[Hashable]:
        return list(self.items)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.items)
