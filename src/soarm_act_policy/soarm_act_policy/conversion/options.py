"""Conversion options (one place for every default the CLI and the API share)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The SO-101 joint order of the dataset vectors (matched by name in the bags).
from ..joints import JOINT_NAMES

ROBOT_TYPE = "so101_follower"
RULES = ("linear", "hold")
ON_PROBLEM = ("fail", "skip", "warn")
SPLIT = ("auto", "events", "bag")
#: --frames: every frame of the episodes, or only the human correction windows (one episode each).
FRAMES = ("all", "corrections")
#: --intervention-feature: write the per-frame `intervention` flag when the recordings hold a
#: take-over (auto), always, or never.
INTERVENTION_FEATURE = ("auto", "always", "never")
#: Software codecs of LeRobot's encoder (lerobot.configs.video) that datasets can use here.
#: Not hevc: LeRobot 0.6's loader rejects its videos (decoded frame timestamps one frame
#: off, FrameTimestampError; measured with x265 at LeRobot's settings, see README).
VCODECS = ("libsvtav1", "h264")


class ConversionError(Exception):
    """Conversion cannot go on; the message names the bag and topic and says what to do."""


@dataclass
class Options:
    """How bags become a dataset. Defaults are the CLI defaults."""

    fps: int = 30
    joints: tuple[str, ...] = JOINT_NAMES
    #: Camera names (topics `cameras/<name>/image_raw`); None = every camera in the bag.
    cameras: tuple[str, ...] | None = None
    #: Prefix of all topics, e.g. "/so101" for `/so101/joint_states`.
    namespace: str = ""
    state_topic: str = "joint_states"
    action_topic: str = "joint_commands"
    events_topic: str = "episode_events"
    #: observation.state at a grid time: "linear" interpolation between the two samples
    #: around it, or "hold" the newest sample not newer than it.
    state_rule: str = "linear"
    #: action at a grid time: "hold" = the newest command not newer than it (the command
    #: in effect), or "linear".
    action_rule: str = "hold"
    #: "events": episodes from episode_events STARTED..ENDED/RESET/next STARTED;
    #: "bag": one episode per bag; "auto": events when the bag has a STARTED event.
    split: str = "auto"
    #: Task text when the recording has none (events, bag metadata).
    task: str | None = None
    on_problem: str = "fail"
    #: A stream gap longer than this (s) is a problem.
    max_gap_s: float = 0.5
    #: A camera sending identical frames for longer than this (s) is a problem.
    frozen_s: float = 3.0
    #: Episodes shorter than this many frames are a problem.
    min_frames: int = 2
    #: Video codec (one of VCODECS; None = LeRobot's default, libsvtav1). h264: on 2x640x480
    #: here it converts ~25 % faster than libsvtav1 and loads training batches ~20 % faster
    #: at the same size (README, "Data pipeline speed").
    vcodec: str | None = "h264"
    #: Encoder speed preset (codec specific: libsvtav1 0..13, h264 ultrafast..veryslow;
    #: None = LeRobot's default for the codec).
    preset: int | str | None = None
    #: Encode videos straight from the decoded frames (conversion.videos, no PNG round
    #: trip); False: LeRobot's recording path (PNG files, encoded at save_episode).
    streaming_encoding: bool = True
    #: "all" frames, or only the "corrections" (frames under human control, one episode per window).
    frames: str = "all"
    #: The `intervention` feature (conversion.corrections): "auto" when some kept episode has a
    #: correction window (or frames is "corrections"), "always", "never". frames "corrections" with
    #: "never": no feature (every frame is a correction), so correction windows can be appended to a
    #: demonstration dataset without it, all of whose frames are the human's too (demo.py --dagger-rounds).
    intervention_feature: str = "auto"
    extra: dict = field(default_factory=dict)

    def validate(self) -> "Options":
        if self.fps <= 0:
            raise ConversionError(f"--fps must be positive, got {self.fps}")
        for name, value, allowed in (("state rule", self.state_rule, RULES),
                                     ("action rule", self.action_rule, RULES),
                                     ("on-problem", self.on_problem, ON_PROBLEM),
                                     ("split", self.split, SPLIT), ("frames", self.frames, FRAMES),
                                     ("intervention feature", self.intervention_feature, INTERVENTION_FEATURE)):
            if value not in allowed:
                raise ConversionError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.vcodec is not None and self.vcodec not in VCODECS:
            raise ConversionError(f"--vcodec must be one of {', '.join(VCODECS)}, got {self.vcodec!r}")
        if len(set(self.joints)) != len(self.joints) or not self.joints:
            raise ConversionError(f"joint names must be unique and not empty: {self.joints}")
        return self

    def video_settings(self):
        """The encoder settings of every video (conversion.videos.VideoSettings)."""
        from .videos import VideoSettings

        return VideoSettings(vcodec=self.vcodec, preset=self.preset)

    def topic(self, name: str) -> str:
        ns = self.namespace.strip("/")
        return f"/{ns}/{name}" if ns else f"/{name}"

    def camera_topic(self, camera: str) -> str:
        return self.topic(f"cameras/{camera}/image_raw")
