"""genlab studio RUN [RUN ...] [--zoo] [--port 8000] [--host 127.0.0.1]: explore trained models in the browser.

Serves a local page over the runs given: samples, latent sliders, interpolation,
upload-and-edit, a drawing canvas for image-to-image runs, the GAN game on toy data and a
live training monitor. It listens on 127.0.0.1 only unless --host names another address
(anyone who can reach that address can then use the models). On a loopback address it answers
only requests for its own names (127.0.0.1, localhost, [::1]), so that a web page elsewhere cannot
reach it by pointing its own name at 127.0.0.1 (DNS rebinding). Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import ipaddress

import torch


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "studio",
        help="explore runs in a local web page",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="*", metavar="RUN", help="run folders or zoo:NAME to serve (none: the game and nothing else)"
    )
    p.add_argument("--zoo", action="store_true", help="serve every generator of the zoo too (genlab zoo list)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn  # imported here: the other commands do not need the web stack

    from genlab.errors import ConfigError
    from genlab.runs.locations import ZOO_PREFIX
    from genlab.runs.zoo import generators
    from genlab.studio.app import LOOPBACK_NAMES, create_app

    runs = [*args.runs, *([f"{ZOO_PREFIX}{entry.name}" for entry in generators()] if args.zoo else [])]
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a TCP port; use 1..65535, e.g. --port 8000")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads {args.threads} must be 1 or more")
        torch.set_num_threads(args.threads)
    if _is_loopback(args.host):  # answer only to this machine's own names (no DNS rebinding)
        app = create_app(runs, allowed_hosts=sorted({*LOOPBACK_NAMES, _host_name(args.host)}))
    else:
        app = create_app(runs, allowed_hosts=None)
        print(f"genlab: warning: serving on {args.host}: anyone who can reach it can use these models")
    print(
        f"genlab studio: http://{_host_name(args.host)}:{args.port}/  ({len(runs)} runs; Ctrl-C stops it)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _host_name(host: str) -> str:
    """``host`` as a Host header names it (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
