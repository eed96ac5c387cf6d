"""Which frames of a video a decode-pass consumer takes: a sampling spec ('all', 'every:N',
'fps:R', and 'off' where a consumer can be switched off) parsed once, and a per-video picker that
applies it to each decoded frame's index and presentation time."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

_SPELLING = {"off": "off", "all": "all", "every": "every:N (N >= 1 frames)", "fps": "fps:R (R > 0 a second)"}


@dataclasses.dataclass(frozen=True)
class FrameSampling:
    """'all' frames, every Nth frame (0, N, 2N, ...), R frames a second (from PTS), or 'off'.
    Subclasses name the modes they accept (`MODES`) and what the spec is called in errors (`WHAT`)."""

    mode: str = "all"
    value: float = 0.0

    MODES: ClassVar[tuple[str, ...]] = ("off", "all", "every", "fps")
    WHAT: ClassVar[str] = "frame sampling"

    @classmethod
    def parse(cls, spec: str | None, default: str = "off"):
        """The sampling `spec` says; a ValueError naming every accepted form otherwise."""
        spec = (spec or default).strip().lower()
        kind, _, num = spec.partition(":")
        if kind in ("off", "all") and not num and kind in cls.MODES:
            return cls(kind)
        try:
            value = float(num)
        except ValueError:
            value = -1.0
        if kind == "every" and "every" in cls.MODES and value >= 1 and value == int(value):
            return cls("every", value)
        if kind == "fps" and "fps" in cls.MODES and value > 0:
            return cls("fps", value)
        forms = [_SPELLING[m] for m in cls.MODES]
        accepted = ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else forms[0]
        raise ValueError(f"{cls.WHAT} must be {accepted}, got {spec!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def picker(self) -> FramePicker:
        """A fresh picker for one video (an 'fps' picker keeps the time of the next frame to take)."""
        return FramePicker(self)

    def __str__(self) -> str:
        return f"{self.mode}:{self.value:g}" if self.mode in ("every", "fps") else self.mode


class FramePicker:
    """`picker(index, time)`: whether the frame is taken, for the frames of one video in order."""

    def __init__(self, sampling: FrameSampling) -> None:
        self._mode, self._value = sampling.mode, sampling.value
        self._next_time: float | None = None

    def __call__(self, index: int, time: float) -> bool:
        if self._mode == "all":
            return True
        if self._mode == "every":
            return index % int(self._value) == 0
        if self._mode == "fps" and (self._next_time is None or time >= self._next_time - 1e-9):
            self._next_time = (time if self._next_time is None else self._next_time) + 1.0 / self._value
            return True
        return False
