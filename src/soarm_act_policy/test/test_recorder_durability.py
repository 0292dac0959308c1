"""Recorder durability without DDS: fsync before the final rename, data file names, recovery of
unfinished (killed) bags, disk full while recording (ENOSPC through the writer's `opener` seam)."""

import errno
import os
import shutil

import pytest

from soarm_act_policy.bags import BagError, BagWriter, open_bag
from soarm_act_policy.bags.recovery import recover_partial, scan_partial
from soarm_act_policy.bags.writer import RESERVE_FILE
from soarm_act_policy.bags.session import EpisodeRecorder
from soarm_act_policy.bags.synthetic import episode_event, joint_state
from soarm_act_policy.events import ENDED, STARTED

JS = "sensor_msgs/msg/JointState"
EV = "soarm_msgs/msg/EpisodeEvent"


def _raw(msg, typ):
    from soarm_act_policy.bags import make_typestore

    return make_typestore().serialize_cdr(msg, typ)


def _read(bag, topics=("joint_states", "episode_events")):
    with open_bag(bag) as b:
        return [(m.topic, m.log_time_ns) for m in b.messages(topics)], b.custom_data


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_finished_bag_is_fsynced_before_the_rename_and_its_data_file_is_not_hidden(tmp_path, monkeypatch,
                                                                                   storage):
    calls = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def rename(src, dst, *a, **k):
        calls.append(("rename", str(src)))
        return real_rename(src, dst, *a, **k)

    final = tmp_path / "episode_000000_x"
    w = BagWriter(final, storage=storage, custom_data={"soarm.task": "t"})
    w.add_topic("joint_states", JS)
    w.write("joint_states", 5, joint_state(5, ["a"], [1.0]))
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    assert w.close() == final
    monkeypatch.undo()
    suffix = {"mcap": "mcap", "sqlite3": "db3"}[storage]
    assert sorted(p.name for p in final.iterdir()) == sorted(["metadata.yaml", f"episode_000000_x_0.{suffix}"])
    partial = str(tmp_path / ".episode_000000_x.partial")
    dir_rename = calls.index(("rename", partial))
    assert {("fsync", f"{partial}/episode_000000_x_0.{suffix}"), ("fsync", f"{partial}/metadata.yaml"),
            ("fsync", partial)} <= set(calls[:dir_rename]), calls
    assert ("fsync", str(tmp_path)) in calls[dir_rename:]
    assert _read(final, ["joint_states"]) == ([("/joint_states", 5)], {"soarm.task": "t"})


def _writer_with_clock(path, **kw):
    now = [0.0]
    w = BagWriter(path, custom_data={"soarm.task": "pick"}, clock=lambda: now[0], **kw)
    w.add_topic("joint_states", JS)
    w.add_topic("episode_events", EV)
    return w, now


def test_killed_writer_is_recovered_with_every_chunk_older_than_the_chunk_period(tmp_path):
    """A copy of the .partial directory taken while writing = what a SIGKILL leaves on disk."""
    w, now = _writer_with_clock(tmp_path / "live" / "episode_000003_x")
    w.write("episode_events", 0, episode_event(0, STARTED, 3, "pick"))
    for i in range(1, 95):  # 30 Hz for ~3.1 s
        now[0] = i / 30
        w.write("joint_states", i, joint_state(i, ["a"], [float(i)]))
    killed = tmp_path / "killed" / ".episode_000003_x.partial"
    shutil.copytree(w.tmp, killed)
    w.abort()
    assert not (killed.parent / "episode_000003_x").exists()
    with pytest.raises(BagError, match="unfinished recording.*recoverable"):
        open_bag(killed)
    r = recover_partial(killed)
    assert r.path == killed.parent / "episode_000003_x" and not killed.exists()
    got, custom = _read(r.path)
    # chunks closed at 1 s, 2 s, 3 s: everything up to the 3 s one is there, the rest was in memory
    assert got == [("/episode_events", 0)] + [("/joint_states", i) for i in range(1, 91)]
    assert custom == {"soarm.task": "pick", "soarm.ended_by": "recovered"}
    assert sorted(p.name for p in r.path.iterdir()) == ["episode_000003_x_0.mcap", "metadata.yaml"]


def test_recovery_of_a_file_cut_anywhere_keeps_exactly_the_complete_chunks(tmp_path):
    w, now = _writer_with_clock(tmp_path / "bag", chunk_period=0.0)  # one chunk per message
    for i in range(12):
        w.write("joint_states", i, joint_state(i, ["a"], [float(i)]))
    w.flush()
    data = w.data_path.read_bytes()
    src = w.tmp
    for cut in range(60, len(data), 53):
        partial = tmp_path / f"cut{cut}" / ".b.partial"
        shutil.copytree(src, partial)
        (partial / w.data_path.name).write_bytes(data[:cut])
        try:
            n = scan_partial(partial).message_count
        except BagError as exc:
            assert "nothing to recover" in str(exc)
            continue
        got, _ = _read(recover_partial(partial).path, ["joint_states"])
        assert got == [("/joint_states", i) for i in range(n)], cut
        assert 0 < n <= 12
    w.abort()


class FullDisk:
    """Files opened through `open` refuse writes with ENOSPC while `full` (after writing half of
    the first refused write, like a real disk filling up mid-record)."""

    def __init__(self):
        self.full = False
        self.refused = 0

    def open(self, path, mode="r"):
        return _File(open(path, mode), self)


class _File:
    def __init__(self, f, disk):
        self._f, self._disk = f, disk

    def write(self, b):
        if self._disk.full:
            self._disk.refused += 1
            self._f.write(bytes(b)[: len(b) // 2])
            self._f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_disk_full_keeps_the_bag_so_far_and_refuses_episodes_until_space_is_back(tmp_path):
    disk, errors, now = FullDisk(), [], [0.0]
    rec = EpisodeRecorder(tmp_path, {"joint_states": JS, "episode_events": EV}, clock=lambda: now[0],
                          opener=disk.open, log_error=errors.append, reserve_bytes=4096)

    def ev(t, kind, idx):
        rec.on_event("/episode_events", t, _raw(episode_event(t, kind, idx, "pick"), EV), kind=kind,
                     episode_index=idx, task="pick", stamp_ns=t)

    def js(i):  # 30 Hz
        now[0] = i / 30
        rec.on_message("/joint_states", 1000 + i, _raw(joint_state(1000 + i, ["a"], [float(i)]), JS))

    ev(1000, STARTED, 0)
    assert (rec.current.writer.tmp / RESERVE_FILE).stat().st_size == 4096  # room to finish the bag
    k = 45  # the disk fills at message k (1.5 s); the 1 s chunk went out at message 30
    for i in range(k):
        js(i)
    disk.full = True
    for i in range(k, 60):
        js(i)  # into the chunk in memory
    assert rec.recording is not None and not disk.refused and not errors
    js(60)  # 2 s: the chunk goes to the disk: ENOSPC half-way through its record
    assert disk.refused and rec.recording is None and rec.write_errors == 1
    assert "No space left on device" in errors[0] and "free space in" in errors[0]
    (bag,) = rec.closed_bags
    got, custom = _read(bag)
    # the torn chunk is cut off the file and written again from memory: nothing up to the error is lost
    assert got == [("/episode_events", 1000)] + [("/joint_states", 1000 + i) for i in range(61)]
    assert custom["soarm.ended_by"] == "recovered" and custom["soarm.task"] == "pick"
    assert sorted(p.name for p in bag.iterdir()) == sorted(["metadata.yaml", bag.name + "_0.mcap"])
    js(61)  # the rest of the episode goes nowhere, without an error
    ev(2000, ENDED, 0)
    ev(3000, STARTED, 1)  # still full: refused, said so
    assert rec.recording is None and rec.write_errors == 2
    assert "not recording" in errors[1] and "No space left on device" in errors[1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left of the refused bag
    disk.full = False
    ev(4000, STARTED, 2)
    js(3001)  # stamp 4001
    ev(5000, ENDED, 2)
    rec.close_all()
    assert len(rec.closed_bags) == 2
    got, custom = _read(rec.closed_bags[1])
    assert got == [("/episode_events", 4000), ("/joint_states", 4001), ("/episode_events", 5000)]
    assert custom["soarm.ended_by"] == "ENDED" and rec.write_errors == 2
    assert sorted(p.name for p in rec.closed_bags[1].iterdir()) == sorted(
        ["metadata.yaml", rec.closed_bags[1].name + "_0.mcap"])
    ev(6000, STARTED, 3)
    js(5001)
    disk.full = True
    rec.close_all()  # finishing the bag fails: it is recovered instead
    assert rec.write_errors == 3 and len(rec.closed_bags) == 3
    assert _read(rec.closed_bags[2])[0] == [("/episode_events", 6000), ("/joint_states", 6001)]


def test_recorder_start_recovers_unfinished_bags_and_the_converter_lists_the_rest(tmp_path):
    from soarm_act_policy.conversion import convert
    from soarm_act_policy.conversion.options import Options

    out = tmp_path / "recordings"
    w, now = _writer_with_clock(tmp_path / "live" / "episode_000004_x", chunk_period=0.0)
    w.write("episode_events", 0, episode_event(0, STARTED, 4, "pick"))
    w.write("joint_states", 1, joint_state(1, ["a"], [1.0]))
    shutil.copytree(w.tmp, out / ".episode_000004_x.partial")
    w.abort()
    empty = out / ".episode_000005_y.partial"
    empty.mkdir()
    (empty / "episode_000005_y_0.mcap").write_bytes(b"\x89MCAP0\r\n\x01")
    infos, errors = [], []
    rec = EpisodeRecorder(out, {"joint_states": JS}, log=infos.append, log_error=errors.append)
    assert [p.name for p in rec.recovered] == ["episode_000004_x"]
    assert _read(out / "episode_000004_x")[0] == [("/episode_events", 0), ("/joint_states", 1)]
    assert not any(p.name.endswith(".partial") and "000004" in p.name for p in out.iterdir())
    assert any("recovered" in line for line in infos)
    assert len(errors) == 1 and ".episode_000005_y.partial" in errors[0]
    assert rec.start().name.startswith("episode_000006_")  # numbering continues past both
    rec.close_all()
    result = convert([out], "x/y", tmp_path / "ds", Options(on_problem="skip", min_frames=1), dry_run=True,
                     log=lambda s: None)
    failed = {f["bag"]: f["error"] for f in result.failed_bags}
    assert "unfinished recording (no metadata.yaml), not recoverable" in failed.pop(str(empty))
    assert not any("unfinished" in e for e in failed.values()), failed  # the others: topics missing
