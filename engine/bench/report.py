"""The README's benchmark tables, rendered from the committed results of `python -m engine.bench` (never pasted).

    python -m engine.bench generation --out docs/bench    # writes docs/bench/generation.json (+ .md)
    python -m engine.bench.report                         # re-renders README.md's tables from docs/bench/*.json
    python -m engine.bench.report --check                 # exit code 1 when README.md is not what they render

In the README a table sits between `<!-- bench: docs/bench/generation.json -->` and `<!-- /bench -->`; everything
in between is replaced by format_table() of that JSON file (paths relative to the README's folder).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from .runner import format_table

BLOCK = re.compile(r"(<!-- bench: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.S)


def render(text: str, root: str) -> str:
    """`text` with every bench block's body replaced by the table its JSON file renders to."""
    def table(match: re.Match) -> str:
        path = os.path.join(root, match["path"])
        try:
            with open(path, encoding="utf-8") as fh:
                result = json.load(fh)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read benchmark result {match['path']}: {e}") from None
        return f"{match[1]}{format_table(result, title=False)}\n{match[4]}"

    return BLOCK.sub(table, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.bench.report", description=__doc__.split("\n")[0])
    ap.add_argument("--readme", default="README.md", help="the markdown file holding bench blocks")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when the file is out of date")
    args = ap.parse_args(argv)
    with open(args.readme, encoding="utf-8") as fh:
        text = fh.read()
    try:
        new = render(text, os.path.dirname(os.path.abspath(args.readme)))
    except ValueError as e:
        ap.error(str(e))
    blocks = len(BLOCK.findall(text))
    if args.check:
        print(f"{args.readme}: {blocks} bench tables, " + ("up to date" if new == text else "OUT OF DATE"))
        return 0 if new == text else 1
    if new != text:
        with open(args.readme + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(args.readme + ".tmp", args.readme)
    print(f"{args.readme}: {blocks} bench tables rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
