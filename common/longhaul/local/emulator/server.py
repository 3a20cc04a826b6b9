"""The emulator's command line: moto's server, with the emulator's middleware around it.

`python -m longhaul.local.emulator -H 127.0.0.1 -p 4566` takes moto.server's flags and
serves moto's own app the way moto.server does (werkzeug, one thread per request).
moto and werkzeug are development dependencies, so they are imported only to serve:
the rest of the package imports without them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import sys
from typing import Any

from longhaul.local.emulator import speedups
from longhaul.local.emulator.app import DropConnection, Emulator
from longhaul.local.emulator.visibility import DEFAULT_CAP_S

__all__ = ["build", "main"]

CAP_VARIABLE = "LONGHAUL_EMULATOR_VISIBILITY_CAP_S"


def build(*, visibility_cap_s: float | None = None) -> Emulator:
    """moto's application (as moto.server builds it) inside the emulator's middleware."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    speedups.install()
    return Emulator(
        DomainDispatcherApplication(create_backend_app), visibility_cap_s=visibility_cap_s
    )


def _request_handler() -> type:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class RequestHandler(MotoRequestHandler):
        """moto's request handler, which can also drop a connection with a TCP reset."""

        def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
            if not isinstance(error, DropConnection):
                super().connection_dropped(error, environ)
                return
            # SO_LINGER 0 makes close() send RST instead of FIN. The socket only closes
            # once its file objects are closed too, and the handler must not read another
            # request from it.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.connection.close()
            self.rfile.close()

    return RequestHandler


def main(argv: list[str] | None = None) -> None:
    """Parse moto.server's flags and serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m longhaul.local.emulator")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="which host to bind")
    parser.add_argument(
        "-p",
        "--port",
        type=int,
        default=int(os.environ.get("MOTO_PORT", 5000)),
        help="port to listen on",
    )
    parser.add_argument("-s", "--ssl", action="store_true", help="serve HTTPS (adhoc cert)")
    parser.add_argument("-c", "--ssl-cert", help="path to an SSL certificate")
    parser.add_argument("-k", "--ssl-key", help="path to the SSL private key")
    parser.add_argument(
        "--visibility-cap",
        type=float,
        help=f"SQS's cap on a received message's visibility, seconds (${CAP_VARIABLE}, "
        f"default {DEFAULT_CAP_S:.0f})",
    )
    args = parser.parse_args(argv)
    if args.visibility_cap is None:
        try:
            args.visibility_cap = float(os.environ.get(CAP_VARIABLE, DEFAULT_CAP_S))
        except ValueError:
            parser.error(f"{CAP_VARIABLE} must be a number of seconds")
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))
    ssl_context: Any = None
    if args.ssl_cert and args.ssl_key:
        ssl_context = (args.ssl_cert, args.ssl_key)
    elif args.ssl:
        ssl_context = "adhoc"
    run_simple(
        args.host,
        args.port,
        build(visibility_cap_s=args.visibility_cap),
        threaded=True,
        ssl_context=ssl_context,
        request_handler=_request_handler(),
    )
