"""Episode videos encoded beside LeRobot's writer, so reading and encoding overlap writing.

One job per bag (`encode_bag`): the bag's selected camera frames are read once, and
each episode's frames go to one encoder thread per camera (PyAV releases the GIL while
encoding) with exactly the codec settings LeRobot's `RGBEncoderConfig` gives the codec
(pix_fmt, crf, g, preset, timestamps k/fps). Jobs run one at a time in a thread of the
main process for `workers` 1, else in `workers` spawned processes (no LeRobot import
there: everything LeRobot decides is resolved in the main process and handed over in
the job); the main process meanwhile scans the next bags, writes
the episodes' rows through LeRobot and takes the finished videos in episode order
through `EncodedVideos`, which stands in for LeRobot's streaming encoder. The videos and
statistics do not depend on which worker made them, so any `workers` gives the same
dataset.

Video statistics follow LeRobot's episode rule for camera features
(`compute_stats.sample_indices` frames, downsampled like `auto_downsample_height_width`,
`get_feature_stats` per channel, computed in the main process by `with_stats`) instead
of a histogram update per frame, which cost more than the encoding itself (~27 ms per
640x480 frame).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .frames import iter_frames
from .episodes import BagEpisode

#: Frames buffered per camera between the reader and an encoder thread.
QUEUE_FRAMES = 16
#: Frames of at most this many bytes go to an encoder thread in lists of up to BATCH_FRAMES.
BATCH_BYTES = 1 << 20
BATCH_FRAMES = 8


def batch_frames(image: np.ndarray) -> int:
    """Frames per hand-over to an encoder thread: up to BATCH_FRAMES, at most BATCH_BYTES
    (one at a time from 640x480 rgb8 on)."""
    return max(1, min(BATCH_FRAMES, BATCH_BYTES // max(1, image.nbytes)))


@dataclass(frozen=True)
class VideoSettings:
    """The encoder settings (LeRobot RGBEncoderConfig fields) shared by every video."""

    vcodec: str | None = None  # None: LeRobot's default
    preset: int | str | None = None  # None: LeRobot's default for the codec
    crf: int | None = None  # None: LeRobot's default (30)

    def encoder_config(self):
        """LeRobot's RGBEncoderConfig for these settings (validates codec and options)."""
        from lerobot.configs.video import RGBEncoderConfig

        from .options import ConversionError

        kw = {k: v for k, v in (("vcodec", self.vcodec), ("preset", self.preset), ("crf", self.crf))
              if v is not None}
        try:
            return RGBEncoderConfig(**kw)
        except ValueError as exc:
            raise ConversionError(f"video encoder settings {kw} rejected by LeRobot/PyAV: {exc}. Check "
                                  "--vcodec/--preset (bag_to_lerobot --help)") from exc


@dataclass(frozen=True)
class Encoder:
    """What PyAV needs, resolved by LeRobot's RGBEncoderConfig in the main process."""

    vcodec: str
    pix_fmt: str
    options: dict[str, str]

    @classmethod
    def from_settings(cls, settings: VideoSettings) -> "Encoder":
        """Resolved and tried on a few blank frames (LeRobot does not check every option)."""
        import io

        import av

        from .options import ConversionError

        enc = settings.encoder_config()
        encoder = cls(enc.vcodec, enc.pix_fmt, enc.get_codec_options(None, as_strings=True))
        logging.getLogger("libav").setLevel(logging.WARNING)  # libx264's statistics of the try
        try:
            with av.open(io.BytesIO(), "w", format="mp4") as container:
                stream = container.add_stream(encoder.vcodec, 30, options=dict(encoder.options))
                stream.pix_fmt, stream.width, stream.height = encoder.pix_fmt, 64, 64
                for i in range(3):
                    frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                    frame.pts, frame.time_base = i, Fraction(1, 30)
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
        except (av.FFmpegError, ValueError) as exc:
            raise ConversionError(f"the video encoder refuses {encoder.vcodec} with options {encoder.options}: "
                                  f"{exc}. Check --vcodec/--preset (bag_to_lerobot --help)") from exc
        return encoder


@dataclass
class BagJob:
    """Encode the videos of the `episodes` (of one bag, time order) into `out_dir`."""

    episodes: list[BagEpisode]
    cameras: list[str]
    topics: dict[str, str]  # camera -> image topic
    keys: dict[str, str]  # camera -> dataset feature key
    fps: int
    encoder: Encoder
    out_dir: Path
    #: per episode: the frame numbers whose downsampled pixels go into the statistics
    stat_frames: list[list[int]]
    #: camera -> (rows, columns) kept by LeRobot's downsampling for statistics
    stat_pixels: dict[str, tuple[np.ndarray, np.ndarray]]


def make_job(episodes: list[BagEpisode], cameras: list[str], topics: dict[str, str], keys: dict[str, str],
             shapes: dict[str, tuple[int, int]], fps: int, encoder: Encoder, out_dir: Path) -> BagJob:
    """A BagJob with LeRobot's statistics sampling (frames and pixels) resolved here."""
    from lerobot.datasets.compute_stats import auto_downsample_height_width, sample_indices

    pixels = {}
    for c in cameras:
        h, w = shapes[c]
        rows = auto_downsample_height_width(np.broadcast_to(np.arange(h)[None, :, None], (1, h, w)))
        cols = auto_downsample_height_width(np.broadcast_to(np.arange(w)[None, None, :], (1, h, w)))
        pixels[c] = (np.array(rows[0, :, 0]), np.array(cols[0, 0, :]))
    frames = [sample_indices(p.frames) if p.frames >= 2 else [] for p in episodes]
    return BagJob(episodes, cameras, topics, keys, fps, encoder, out_dir, frames, pixels)


#: Per episode: feature key -> (mp4 path, CHW uint8 frames for the statistics, or None).
EpisodeVideos = dict[str, tuple[Path, np.ndarray | None]]


class _CameraEncoder(threading.Thread):
    """Encodes one camera's frames of one episode from a queue into `path` (no frame dropped)."""

    def __init__(self, path: Path, fps: int, enc: Encoder, sampled: list[int], pixels: tuple, batch: int = 1):
        super().__init__(daemon=True)
        self.path, self.fps, self.enc = path, fps, enc
        self.batch = max(1, batch)
        self.frames: queue.Queue = queue.Queue(maxsize=max(2, QUEUE_FRAMES // self.batch))
        self._pending: list[np.ndarray] = []
        self.sampled, self.rows, self.cols = set(sampled), pixels[0], pixels[1]
        self.stat_frames: list[np.ndarray] = []
        self.error: BaseException | None = None
        self.count = 0

    def put(self, image: np.ndarray | None) -> None:
        """Queue the next frame; None: the episode's last frame was put. Frames travel in lists
        of `batch` (one queue hand-over, one thread wake-up per list, not per frame)."""
        if image is not None:
            self._pending.append(image)
            if len(self._pending) < self.batch:
                return
        frames, self._pending = self._pending, []
        if frames:
            self._hand_over(frames)
        if image is None:
            self._hand_over(None)

    def _hand_over(self, item: list[np.ndarray] | None) -> None:
        while self.is_alive():
            try:
                self.frames.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise RuntimeError(f"video encoder for {self.path.name} stopped: {self.error}")

    def run(self) -> None:
        import av

        try:
            tb = Fraction(1, self.fps)  # not stream.time_base: the mp4 muxer changes it
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(self.path), "w") as container:
                stream = None
                while (frames := self.frames.get()) is not None:
                    for img in frames:
                        if stream is None:
                            stream = container.add_stream(self.enc.vcodec, self.fps, options=dict(self.enc.options))
                            stream.pix_fmt = self.enc.pix_fmt
                            stream.height, stream.width = img.shape[:2]
                            stream.time_base = tb
                        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                        frame.pts, frame.time_base = self.count, tb
                        container.mux(stream.encode(frame))
                        if self.count in self.sampled:
                            self.stat_frames.append(img[self.rows][:, self.cols].transpose(2, 0, 1))
                        self.count += 1
                if stream is not None:
                    container.mux(stream.encode())
        except BaseException as exc:  # noqa: B036 - handed to the reader thread
            self.error = exc
            while True:  # unblock a reader waiting for room
                try:
                    self.frames.get_nowait()
                except queue.Empty:
                    break

    def result(self) -> tuple[Path, np.ndarray | None]:
        self.join()
        if self.error is not None:
            raise RuntimeError(f"encoding {self.path.parent.name} failed: {self.error}") from self.error
        return self.path, np.stack(self.stat_frames) if len(self.stat_frames) >= 2 else None


def with_stats(videos: EpisodeVideos) -> dict[str, tuple[Path, dict | None]]:
    """{key: (mp4, per-channel stats (3,) in 0..255 or None)}: LeRobot's get_feature_stats."""
    return {k: (path, None if frames is None else image_stats(frames)) for k, (path, frames) in videos.items()}


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's `get_feature_stats(frames, axis=(0, 2, 3), keepdims=False)`, equal to the bit,
    for uint8 frames (N, 3, H, W), in about a sixth of its CPU time.

    LeRobot's RunningQuantileStats.update on one batch reshapes the frames to (pixels, 3)
    float32, computes mean and mean of squares with np.mean along axis 0 (numpy adds the
    rows one after the other in float32: a sequential sum, not a pairwise one), min/max
    along that strided axis, and sorts every channel for its 5000-bin histogram. Here, per
    channel and without the (pixels, 3) copy: min, max and the histogram from a count of
    the 256 byte values (exact integers); the two sums as that same sequential float32 sum
    (`np.add.accumulate`), divided as np.mean divides. Other inputs, or a numpy whose
    axis-0 sum is not sequential (`_axis0_sum_is_sequential`), go to LeRobot's function.
    """
    from lerobot.datasets import compute_stats as cs

    axis = (0, 2, 3)
    if (frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] < 2 or frames.shape[1] == 0
            or frames[0, 0].size == 0 or not _axis0_sum_is_sequential()):
        return cs.get_feature_stats(frames, axis=axis, keepdims=False)
    running = _byte_stats_class()()
    running.update_frames(frames)
    stats = running.get_statistics()
    stats["count"] = np.array([frames.shape[0]])
    return cs._reshape_stats_by_axis(stats, axis, False, frames.shape)


def _sequential_means(channel: np.ndarray) -> tuple[np.float32, np.float32]:
    """Float32 sums of the values and of their squares, added in C order one after the other
    (what np.mean(axis=0) does to each column of LeRobot's (pixels, channels) float32 batch)."""
    values = channel.astype(np.float32).reshape(-1)  # a new contiguous array, summed in place
    squares = values * values  # exact: at most 255**2
    return (np.add.accumulate(values, out=values)[-1], np.add.accumulate(squares, out=squares)[-1])


@functools.cache
def _axis0_sum_is_sequential() -> bool:
    """Whether this numpy's np.mean(a, axis=0) of a C-contiguous (n, 3) float32 array sums the
    rows one after the other, as `_sequential_means` does (numpy 2.x: yes). Checked on rows
    where the order shows: 2**24 then ones (sequential float32 addition keeps 2**24 each
    time; any regrouping of the ones would not), and on random bytes."""
    rows = np.ones((20000, 3), np.float32)
    rows[0] = 2.0**24
    rows[:, 2] = np.random.default_rng(0).integers(0, 256, rows.shape[0]) ** 2
    want = np.mean(rows, axis=0)
    sums = np.array([np.add.accumulate(rows[:, c].copy())[-1] for c in range(3)], np.float32)
    got = np.true_divide(sums, np.intp(rows.shape[0]), out=sums, casting="unsafe")
    return bool(np.array_equal(got, want) and got.dtype == want.dtype)


@functools.cache
def _byte_stats_class() -> type:
    from lerobot.datasets.compute_stats import RunningQuantileStats

    class ByteStats(RunningQuantileStats):
        """RunningQuantileStats that takes uint8 frames (N, C, H, W) at once as its first update
        (see image_stats); `update` stays LeRobot's own."""

        def update_frames(self, frames: np.ndarray) -> None:
            if self._count != 0:
                raise RuntimeError("update_frames must be the first update")
            channels = frames.shape[1]
            count = frames.shape[0] * frames[0, 0].size  # LeRobot's rows: one per pixel
            counts, sums, sums_of_squares = [], [], []
            for c in range(channels):
                counts.append(np.bincount(frames[:, c].reshape(-1), minlength=256))
                total, total_of_squares = _sequential_means(frames[:, c])
                sums.append(total)
                sums_of_squares.append(total_of_squares)
            n = np.intp(count)  # np.mean divides by the item count as an intp
            self._mean = np.true_divide(np.array(sums, np.float32), n, casting="unsafe",
                                        out=np.empty(channels, np.float32))
            self._mean_of_squares = np.true_divide(np.array(sums_of_squares, np.float32), n, casting="unsafe",
                                                   out=np.empty(channels, np.float32))
            values = np.arange(256, dtype=np.float32)
            self._min = np.array([values[np.flatnonzero(c)[0]] for c in counts])
            self._max = np.array([values[np.flatnonzero(c)[-1]] for c in counts])
            self._bin_edges = [
                np.linspace(self._min[i] - 1e-10, self._max[i] + 1e-10, self._num_quantile_bins + 1)
                for i in range(channels)
            ]
            self._histograms = [np.histogram(values, bins=edges, weights=c.astype(np.float64))[0]
                                for edges, c in zip(self._bin_edges, counts, strict=True)]
            self._count = count

    return ByteStats


def encode_bag(job: BagJob) -> tuple[list[EpisodeVideos], float]:
    """Encode every episode of the job: one EpisodeVideos per episode, in order, and the CPU
    seconds this thread spent reading the bag's frames (cpu_times: "frames for the encoder")."""
    os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner per video: errors only
    logging.getLogger("libav").setLevel(logging.WARNING)  # libx264's statistics per video
    results: list[EpisodeVideos] = []
    encoders: dict[str, _CameraEncoder] = {}
    index = {id(p): i for i, p in enumerate(job.episodes)}
    reading = [0.0]
    try:
        for ep, k, images in _timed(iter_frames(job.episodes, job.cameras, job.topics), reading):
            if k == 0:
                i = index[id(ep)]
                encoders = {c: _CameraEncoder(job.out_dir / f"ep{i:04d}-{c}" / "video.mp4", job.fps, job.encoder,
                                              job.stat_frames[i], job.stat_pixels[c], batch_frames(images[c]))
                            for c in job.cameras}
                for e in encoders.values():
                    e.start()
            for c in job.cameras:
                encoders[c].put(images[c])
            if k == ep.frames - 1:
                for e in encoders.values():
                    e.put(None)
                results.append({job.keys[c]: encoders[c].result() for c in job.cameras})
                encoders = {}
    finally:
        for e in encoders.values():  # an error in the middle of an episode: stop its threads
            if e.is_alive():
                e.put(None)
            e.join()
    return results, reading[0]


def _timed(items: Iterator, seconds: list[float]) -> Iterator:
    """`items`, adding the thread CPU time spent producing each one to seconds[0]."""
    while True:
        t = time.thread_time()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            seconds[0] += time.thread_time() - t
        yield item


class EncodedVideos:
    """Stands in for LeRobot's StreamingVideoEncoder on a dataset writer.

    LeRobot calls start_episode / feed_frame (ignored: the pixels were encoded by a job)
    and takes the episode's videos from finish_episode, which returns what `hand_over`
    put there: {feature key: (mp4 path, raw stats)}. Each mp4 must sit alone in its own
    directory (LeRobot deletes the directory after moving the video into the dataset).
    """

    def __init__(self):
        self._next: dict | None = None
        self._episode_active = False

    def hand_over(self, videos: EpisodeVideos) -> None:
        """The next episode's videos (as encode_bag returns them); statistics computed here."""
        self._next = with_stats(videos)

    def start_episode(self, video_keys, temp_dir, depth_video_keys=None) -> None:
        self._episode_active = True

    def feed_frame(self, video_key: str, image) -> None:
        pass

    def finish_episode(self) -> dict:
        if self._next is None:
            raise RuntimeError("no encoded videos handed over for this episode")
        videos, self._next = self._next, None
        self._episode_active = False
        return videos

    def cancel_episode(self) -> None:
        self._next, self._episode_active = None, False

    def close(self) -> None:
        self.cancel_episode()


def make_executor(workers: int) -> cf.Executor:
    """The executor of encode_bag jobs: for `workers` 1 a thread of this process, else `workers`
    spawned processes.

    One worker process cost more CPU than the GIL it avoided (measured with
    benchmarks/bench_conversion.py, 4 x 20 s, 2 cores under load: at 128x96 ~1.1 s of ~5 s,
    at 320x240 1.5-3 s of ~19 s, wall time the same or shorter): its start (interpreter,
    numpy, PyAV, rosbags: ~0.65 s CPU) and pickling the statistics frames back, while the
    encoding releases the GIL and the job's own Python work (reading the bag) is small.
    """
    if workers <= 1:
        return cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode_bag")
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(workers):  # start and import now, while the main process scans the bags
        pool.submit(_warm_up)
    return pool


def _warm_up() -> None:
    import av  # noqa: F401

