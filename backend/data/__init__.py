"""Data: every source becomes uint8 tensors in memory, with a class list and a fingerprint."""

from backend.data.images import Images, TaskData
from backend.data.task import load_task, select_classes

__all__ = ["Images", "TaskData", "load_task", "select_classes"]
