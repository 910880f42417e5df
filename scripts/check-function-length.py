#!/usr/bin/env python3
"""check-function-length.py: fails when a function of the library or the CLI is longer than
LIMIT lines (signature to closing brace). Relies on the .clang-format layout the tree is checked
against: a definition starts at column 0 and its body closes with '}' alone at column 0.
Usage: python3 scripts/check-function-length.py [LIMIT]   (default 150; exit 0 = none longer)"""
import os
import re
import subprocess
import sys

FOLDERS = ("core", "modalities", "encoders", "loss", "datasets", "pipeline", "train", "export",
           "eval", "cli")
NOT_A_FUNCTION = ("typedef", "struct", "enum", "union", "#", "/", " ", "\t", "}")


def functions(path):
    """(first line, last line, name) of each function definition in a C file."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line and not line.startswith(NOT_A_FUNCTION) and "(" in line and "=" not in line.split("(")[0]:
            j = i
            while j < len(lines) and not lines[j].rstrip().endswith(("{", ";")):
                j += 1
            if j < len(lines) and lines[j].rstrip().endswith("{"):
                k = j + 1
                while k < len(lines) and lines[k] != "}":
                    k += 1
                name = re.findall(r"(\w+)\s*\(", line)
                yield i + 1, k + 1, name[0] if name else line.strip()
                i = k
        i += 1


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = subprocess.run(["git", "ls-files", "*.c"], cwd=root, capture_output=True, text=True,
                           check=True).stdout.split()
    bad = 0
    for f in files:
        if f.split("/")[0] not in FOLDERS:
            continue
        for first, last, name in functions(os.path.join(root, f)):
            if last - first + 1 > limit:
                print(f"check-function-length: {f}:{first}: {name} is {last - first + 1} lines "
                      f"(at most {limit})", file=sys.stderr)
                bad = 1
    if not bad:
        print(f"check-function-length: no library or CLI function over {limit} lines",
              file=sys.stderr)
    return bad


if __name__ == "__main__":
    sys.exit(main())
