#!/usr/bin/env python3
"""Fails when an #include in runtime/ runs upward or sideways between the layers, so the picture
in docs/design.md cannot drift from the code. Each folder is a layer, lowest first; a file may
include its own folder and the folders below it, always as "<folder>/<file>"."""
import pathlib
import re
import sys

LAYERS = ["base", "shm", "sync", "ipc", "proc", "pool", "capi"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main(runtime):
    runtime = pathlib.Path(runtime)
    problems = []
    for rank, layer in enumerate(LAYERS):
        for path in sorted((runtime / layer).glob("*.[ch]pp")):
            for target in INCLUDE.findall(path.read_text()):
                where = "%s: #include \"%s\"" % (path.relative_to(runtime), target)
                parts = target.split("/")
                if len(parts) != 2 or parts[0] not in LAYERS:
                    problems.append(where + ": not <layer>/<file> of runtime/")
                elif not (runtime / target).is_file():
                    problems.append(where + ": no such file")
                elif LAYERS.index(parts[0]) > rank:
                    problems.append(where + ": %s is above %s" % (parts[0], layer))
    stray = [p.name for p in runtime.glob("*.[ch]pp")]
    if stray:
        problems.append("files outside every layer: " + ", ".join(stray))
    for p in problems:
        print(p)
    print("%d include problems in %s (layers: %s)" % (len(problems), runtime, " < ".join(LAYERS)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
