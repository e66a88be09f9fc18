"""The ``hydra-sigopt`` command: install the engine; inspect, continue, kill and delete sweeps."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

from hydra_sigopt.errors import SigOptSweeperError


def _install_engine(args: argparse.Namespace) -> int:
    from hydra_sigopt.backends.lite import install_command, load_local_driver

    command = install_command()
    print("Installing the local SigOpt engine without its stale pins:\n  " + " ".join(command), flush=True)
    if args.dry_run:
        return 0
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        print("pip failed; see its output above.", file=sys.stderr)
        return done.returncode
    load_local_driver()
    print("The local engine (sigoptlite) imports and is ready.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hydra-sigopt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("install-engine", help="install sigoptlite and libsigopt without their stale pins")
    p.add_argument("--dry-run", action="store_true", help="print the pip command only")
    p.set_defaults(func=_install_engine)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SigOptSweeperError as exc:
        print(f"hydra-sigopt: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
