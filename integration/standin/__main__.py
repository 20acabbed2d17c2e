"""Run a stand-in in the foreground until SIGTERM / Ctrl-C (for scripts/demo.sh and benchmarks).

    python -m integration.standin c8y --host localhost --port 8883 \\
        --cafile ca.pem --cert responder.pem --key responder.key
    python -m integration.standin az ...same options... [--silent]
    python -m integration.standin aws-front --cert server.pem --key server.key \\
        --client-cafile ca.pem --backend 127.0.0.1:1883

Prints ``ready`` (the front: ``ready <port>``) on stdout once it serves,
then runs until it is told to stop; exits 0 then, 1 if it could not start.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from integration.standin.alpn_front import AWS_MQTT_ALPN, AlpnFront
from integration.standin.broker import BrokerAddress, StandinError
from integration.standin.responders import AzureTwinResponder, CumulocityResponder, Responder

RESPONDERS: dict[str, type[Responder]] = {"c8y": CumulocityResponder, "az": AzureTwinResponder}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.what == "aws-front":
            host, _, port = args.backend.rpartition(":")
            front = AlpnFront(
                certfile=args.cert,
                keyfile=args.key,
                client_cafile=args.client_cafile,
                backend=(host, int(port)),
                alpn=None if args.no_alpn else AWS_MQTT_ALPN,
            ).start()
            print(f"ready {front.port}", flush=True)
            stop.wait()
            front.stop()
            return 0
        broker = BrokerAddress(args.host, args.port, args.cafile, args.cert, args.key)
        responder = RESPONDERS[args.what](broker, silent=args.silent).start()
    except (StandinError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    stop.wait()
    responder.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m integration.standin",
        description="Run a stand-in cloud responder or the AWS port-443 front.",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    for name, responder in RESPONDERS.items():
        one = sub.add_parser(name, help=(responder.__doc__ or "").splitlines()[0])
        one.add_argument("--host", default="localhost")
        one.add_argument("--port", type=int, required=True, help="the broker's TLS port")
        one.add_argument("--cafile", type=Path, required=True, help="CA of the broker's cert")
        one.add_argument("--cert", type=Path, required=True, help="the responder's certificate")
        one.add_argument("--key", type=Path, required=True, help="the responder's key")
        one.add_argument("--silent", action="store_true", help="hear requests, never answer")
    front = sub.add_parser("aws-front", help="TLS on a free port requiring ALPN x-amzn-mqtt-ca")
    front.add_argument("--cert", type=Path, required=True, help="the server certificate")
    front.add_argument("--key", type=Path, required=True, help="the server key")
    front.add_argument("--client-cafile", type=Path, required=True, help="CA of device certs")
    front.add_argument("--backend", required=True, help="the broker, host:port (plain TCP)")
    front.add_argument("--no-alpn", action="store_true", help="select no ALPN, refuse nobody")
    return parser


if __name__ == "__main__":
    sys.exit(main())
