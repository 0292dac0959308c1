"""Images kept from pass 1 for the encoder, within a memory budget, so a bag is read once.

Pass 1 reads every image of a bag anyway (stamps, digests). `KeptFrames` holds that bag's
serialized images for its encoding job, which takes them instead of reading the bag again
(`frames.iter_kept_frames`) and frees each one after its last grid step. `FrameMemory` is the
budget all bags share:

* keeping an image waits while the images of earlier bags fill the budget: their jobs free them
  without any help from the thread that waits, so the wait ends;
* a bag whose own images exceed the budget keeps none (its job reads the bag again, as without
  the store), and so does a bag that gets no job (all episodes skipped, unreadable);
* every image kept is freed exactly once: by the job, or by `drop` (no job, a failed job, the end
  of the conversion).

Only for encoding jobs in a thread of the converting process (`--workers 1`): a worker process
would get the images pickled, which costs more than reading the bag.
"""

from __future__ import annotations

import threading


class FrameMemory:
    """The bytes of serialized images kept, against `budget` bytes."""

    def __init__(self, budget: int):
        self.budget = int(budget)
        self.used = 0
        self._cond = threading.Condition()

    def reserve(self, owner: KeptFrames, nbytes: int) -> bool:
        """Take `nbytes` for `owner`, waiting while other bags' images fill the budget; False
        (and nothing taken) when the owner's own images would not fit even alone."""
        if owner.nbytes + nbytes > self.budget:
            return False
        with self._cond:
            while self.used + nbytes > self.budget:
                self._cond.wait()  # only other bags' images can be freed while the owner is read
            self.used += nbytes
            return True

    def release(self, nbytes: int) -> None:
        with self._cond:
            self.used -= nbytes
            self._cond.notify_all()


class KeptFrames:
    """One bag's serialized images per camera, in receive order (None once freed).

    `keep` is called by pass 1 only, `take`/`free` by the bag's job only, after pass 1 is over.
    """

    def __init__(self, memory: FrameMemory):
        self.memory = memory
        self.raw: dict[str, list[bytes | None]] = {}
        self.nbytes = 0
        self.complete = True  # every image of the bag is here (else the job reads the bag)

    def keep(self, camera: str, raw: bytes) -> None:
        if not self.complete:
            return
        if not self.memory.reserve(self, len(raw)):
            self.drop()  # larger than the whole budget: the job reads the bag again
            return
        self.raw.setdefault(camera, []).append(raw)
        self.nbytes += len(raw)

    def take(self, camera: str, index: int) -> bytes:
        raw = self.raw[camera][index]
        if raw is None:
            raise RuntimeError(f"image {index} of {camera} was taken after it was freed")
        return raw

    def free(self, camera: str, index: int) -> None:
        images = self.raw[camera]
        raw, images[index] = images[index], None
        if raw is not None:
            self.nbytes -= len(raw)
            self.memory.release(len(raw))

    def drop(self) -> None:
        """Free every image still kept; the bag counts as not kept from then on."""
        self.complete = False
        freed, self.raw, self.nbytes = self.nbytes, {}, 0
        if freed:
            self.memory.release(freed)
