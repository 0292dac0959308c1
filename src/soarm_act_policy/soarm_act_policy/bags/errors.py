"""Errors of bag reading and writing, always naming the bag (and the topic when known)."""

from __future__ import annotations

from pathlib import Path


class BagError(Exception):
    """A rosbag2 recording cannot be read or written as needed.

    The message names the bag directory and, when one is involved, the topic.
    """

    def __init__(self, bag: str | Path, message: str, topic: str | None = None):
        self.bag = str(bag)
        self.topic = topic
        self.reason = message
        where = f"bag {self.bag}" + (f", topic {topic}" if topic else "")
        super().__init__(f"{where}: {message}")
