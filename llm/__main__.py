"""Entry point of ``python -m llm``: sets the OpenMP wait policy before torch is imported, and
leaves torchrun's process group when the command ends (:func:`llm.distributed.shutdown`)."""

import os
import sys


def _requested_threads(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        try:
            if a == "--threads" and i + 1 < len(argv):
                return int(argv[i + 1])
            if a.startswith("--threads="):
                return int(a.split("=", 1)[1])
        except ValueError:
            return 1
    return 1


if _requested_threads(sys.argv[1:]) > 1:
    # libgomp spin-waits by default; on shared cores that made steps 3-20x slower (ENVIRONMENT.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from llm.cli import main  # noqa: E402  (torch is imported only now)
from opo_toolkit.cliargs import main_status  # noqa: E402

code = 1
try:
    code = main_status(main)
finally:
    if "torch.distributed" in sys.modules:  # a stage ran: leave its process group, if any, now
        from llm.distributed import shutdown

        shutdown(completed=code == 0)
sys.exit(code)
