"""A clock that moves only when the test moves it (``chalicelib.util.clock.sources`` puts it in place)."""

from __future__ import annotations

import time


class FakeClock:
    def __init__(self, wall: float | None = None) -> None:
        # Whole seconds from now (stored timestamps stay plausible; steps of 0.5 s add up exactly).
        self.wall = float(int(time.time())) if wall is None else wall
        self.mono = 10_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
