"""Progress of a long command (seeding, rollups, retention, and later an ingester catch-up).

On a terminal it is a tqdm bar with the rate and the time left. Anywhere else (a log file, CI, `| tee`, Docker
logs) a redrawn bar is noise, so it writes a plain line every `interval` seconds with the same figures, and one at
the end.

    with Progress(stream=self.stdout, description="Writing events", unit="event", total=events) as progress:
        for batch in batches:
            write(batch)
            progress.update(len(batch))

The total may grow while working (`add_total`), for work whose size is found out as it goes.
"""

import time
from typing import TextIO

from tqdm import tqdm


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    def __init__(
        self,
        *,
        stream: TextIO,
        description: str,
        unit: str,
        total: int = 0,
        interval: float = 10.0,
        tty: bool | None = None,
    ):
        # Django's OutputWrapper appends a newline to every write, which would break tqdm's redrawn line.
        self.stream = getattr(stream, "_out", stream)
        self.description = description
        self.unit = unit
        self.total = total
        self.done = 0
        self.reported = 0  # `done` at the last plain line
        self.interval = interval
        self.started = self.last_line = time.monotonic()
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        self.bar = (
            tqdm(
                total=total or None,
                desc=description,
                unit=f" {unit}",
                unit_scale=total >= 100_000,  # "1.20M/5.00M" for big counts; small ones stay whole numbers
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.5,
            )
            if (is_tty if tty is None else tty)
            else None
        )

    def add_total(self, n: int) -> None:
        self.total += n
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last_line >= self.interval:
            self.last_line = now
            self._line(now)

    def line(self) -> str:
        """The figures as one plain line: done of total, percentage, rate and time left."""
        return self._text(time.monotonic())

    def _text(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.description}: {self.done:,}"
        if self.total:
            text += f" of {self.total:,} {self.unit}s ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}s"
        text += f", {rate:,.0f} {self.unit}s/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        elif self.done and (not self.total or self.done >= self.total):
            text += f", done in {_duration(elapsed)}"
        return text

    def _line(self, now: float) -> None:
        self.reported = self.done
        self.stream.write(self._text(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.done != self.reported:  # the final figures, unless the last line already had them
            self._line(time.monotonic())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
