"""``adaptrack`` console script: ``adaptrack adapt …`` and ``adaptrack track …``."""

from __future__ import annotations

import sys

USAGE = """usage: adaptrack {adapt,track} ...

  adapt   domain adaptation with self-learning: fit | validate | test | predict (LightningCLI) | compare | export
  track   part-aware tracking: fit-parts | fit | run | evaluate | export | generate

Run `adaptrack adapt --help` or `adaptrack track --help` for the subcommands."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subsystem's CLI. Returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    system, rest = args[0], args[1:]
    if system == "adapt":
        from adaptrack.adapt.cli import main as adapt_main

        return adapt_main(rest)
    if system == "track":
        from adaptrack.track.cli import main as track_main

        return track_main(rest)
    print(f"adaptrack: unknown command {system!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
