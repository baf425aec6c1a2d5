"""The progress reporter: a plain line at most every `interval` seconds when not on a terminal."""

import io

from opo_toolkit.progress import LineProgress, progress


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_not_a_terminal_gives_a_few_plain_lines():
    clock, out = FakeClock(), io.StringIO()
    bar = LineProgress(total=1000, desc="align", unit="step", interval=10.0, file=out, clock=clock)
    for _ in range(1000):  # 1000 steps of 0.1 s: 100 s, so 10 interval lines and one at the end
        clock.t += 0.1
        bar.update(1)
        bar.set_postfix(loss="0.5")
    bar.close()
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and "\r" not in out.getvalue()
    assert lines[-1].startswith("align: 1000/1000 steps (100%)") and lines[-1].endswith("loss=0.5")


def test_progress_picks_tqdm_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(progress(total=3, file=io.StringIO()), LineProgress)
    bar = progress(total=3, file=Tty())
    assert type(bar).__name__ == "tqdm"
    bar.close()
    silent = progress(total=3, disable=True)
    silent.update(1)
    silent.close()
