"""``python -m serving``: deploy Moodtape's replicas on a running Ray cluster and return when they are ready."""

from __future__ import annotations

import argparse
import sys
import time

from generation.errors import InvalidInputError
from generation.model.remote import SERVE_APP

from .deploy import CONFIG, deploy, read_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m serving", description="Deploy Moodtape's replicas on a running Ray cluster; return when ready."
    )
    parser.add_argument("--replicas", type=int, help="a fixed number of replicas (default: autoscale per the config)")
    parser.add_argument("--config", default=str(CONFIG), help="deployment settings (default: serving/config.yaml)")
    parser.add_argument("--name", default=SERVE_APP, help=f"the Serve application's name (default {SERVE_APP})")
    args = parser.parse_args(argv)
    if args.replicas is not None and args.replicas < 1:
        parser.error(f"--replicas must be 1 or more, got {args.replicas}")
    try:
        settings = read_settings(args.config)
    except InvalidInputError as e:
        print(e, file=sys.stderr)
        raise SystemExit(2) from e
    started = time.monotonic()
    try:
        deploy(settings, args.replicas, args.name)
    except ConnectionError as e:
        print(f"No Ray cluster answered ({e}). Start one with `ray start --head`, or set RAY_ADDRESS.", file=sys.stderr)
        raise SystemExit(1) from e
    if args.replicas:
        scale = f"{args.replicas} replica{'s' if args.replicas > 1 else ''}"
    else:
        scale = "autoscaling replicas ({min_replicas} to {max_replicas})"
    print(f"Moodtape's '{args.name}' is ready with {scale.format(**settings['autoscaling'])}", end="")
    print(f" after {time.monotonic() - started:.1f} s. Start the app with MOODTAPE_BACKEND=ray python app.py")


if __name__ == "__main__":
    main()
