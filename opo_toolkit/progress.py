"""One progress reporter for every loop of the project (tabular, llm, figures).

On a terminal it is a tqdm bar. When stderr is not a terminal (``python3 tasks.py run > log``, CI)
a redrawn bar would write thousands of carriage-return frames into the log, so it prints a plain
line instead, at most every ``interval`` seconds (and at the end)::

    align online_ipo: 40/150 steps (27%), 12.1 s elapsed, loss=0.693

Usage::

    with progress(total=1000, desc="run", unit="step") as bar:
        for ...:
            bar.update(1)
            bar.set_postfix_str("online_ipo")
"""

from __future__ import annotations

import sys
import time

__all__ = ["progress", "LineProgress"]


class LineProgress:
    """The non-terminal reporter: the tqdm calls used in this project, printed as plain lines."""

    def __init__(self, total: int | None, desc: str = "", unit: str = "it", initial: int = 0,
                 interval: float = 10.0, file=None, clock=time.monotonic):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval, self.file, self.clock = interval, file, clock
        self.postfix = ""
        self.start = self.last = clock()
        self.closed = False

    def line(self) -> str:
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        post = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done} {self.unit}s{pct}, {self.clock() - self.start:.1f} s elapsed{post}"

    def _print(self) -> None:
        print(self.line(), file=self.file or sys.stderr, flush=True)
        self.last = self.clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self.last >= self.interval:
            self._print()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._print()

    def interrupt(self) -> None:
        """Stop without the final line (Ctrl-C: the command prints its own one line instead)."""
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Silent:
    """``disable=True``: the same calls, no output."""

    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass

    def interrupt(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def progress(total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
             disable: bool = False, interval: float = 10.0, file=None):
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a :class:`LineProgress`
    printing one line at most every ``interval`` seconds and one at the end."""
    if disable:
        return _Silent()
    stream = file or sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream, dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial, interval, stream)
