"""`python -m tools NAME [options]`: the repository's tools that the gptviz CLI starts in a process of their own,
so that the engine (gptviz/) never imports tools/ (they drive a real server; the engine stays below them)."""

import argparse
import sys

ENTRIES = {"loadtest": "tools.loadtest"}  # name -> module with main(argv, prog)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools", add_help=False)  # --help goes to the tool
    p.add_argument("--prog", default=None, help="the name its usage line shows (the CLI passes its own)")
    p.add_argument("name", choices=list(ENTRIES))
    args, rest = p.parse_known_args(argv)
    module = __import__(ENTRIES[args.name], fromlist=["main"])
    return module.main(rest, prog=args.prog or f"python -m {ENTRIES[args.name]}")


if __name__ == "__main__":
    sys.exit(main())
