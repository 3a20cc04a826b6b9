"""The local AWS emulator: moto, made atomic where the job runtime's guarantees live, with
fault injection and SQS's visibility cap, driven through `/_longhaul/` on its own port.

Run it with `python -m longhaul.local.emulator -H 127.0.0.1 -p 4566`; docs/local-platform.md
describes the control endpoint.
"""

from longhaul.local.emulator.app import CONTROL_PREFIX, DropConnection, Emulator
from longhaul.local.emulator.faults import FaultBook, FaultKind, FaultRule
from longhaul.local.emulator.server import build, main
from longhaul.local.emulator.visibility import DEFAULT_CAP_S, VisibilityCap

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_CAP_S",
    "DropConnection",
    "Emulator",
    "FaultBook",
    "FaultKind",
    "FaultRule",
    "VisibilityCap",
    "build",
    "main",
]
