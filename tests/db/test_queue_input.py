"""What the queue API refuses before it writes: a priority outside its range (a 32-bit column on PostgreSQL)."""

import json

import pytest
from sqlalchemy import func, select

from db.queue import PRIORITIES, NewJob, QueueError
from db.schema import Job, Study
from db.session import session_scope


def _rows(queue) -> tuple[int, int]:
    with session_scope(queue.engine) as s:
        return s.scalar(select(func.count()).select_from(Study)), s.scalar(select(func.count()).select_from(Job))


@pytest.mark.parametrize("priority", [10**20, -10**20, PRIORITIES[1] + 1, PRIORITIES[0] - 1, True, 1.5, "3"])
def test_a_priority_out_of_range_is_refused_naming_the_range(queue, priority):
    jobs = [NewJob("a", "train", json.dumps({"k": "a"}), "hash-a", {"name": "a"})]
    with pytest.raises(QueueError, match="priority must be a whole number from -1,000,000 to 1,000,000"):
        queue.submit("s", {}, "s", jobs, priority=priority)
    with pytest.raises(QueueError, match="priority must be a whole number"):
        queue.enqueue("preview", json.dumps({"k": "p"}), "hash-p", priority=priority)
    assert _rows(queue) == (0, 0)


def test_the_ends_of_the_range_are_taken(queue):
    for i, priority in enumerate(PRIORITIES):
        study = queue.submit(f"s{i}", {}, f"s{i}", [NewJob("a", "train", json.dumps({"k": i}), f"h{i}", {})],
                             priority=priority)
        with session_scope(queue.engine) as s:
            assert s.scalar(select(Job.priority).where(Job.study_id == study)) == priority
