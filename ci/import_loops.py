#!/usr/bin/env python3
"""Import loops inside one crate: the strongly connected components of its
file graph (an arrow a -> b when a.rs names `crate::b::..`, in a `use` or
inline), larger than a bound. Unit-test modules (`#[cfg(test)]` /
`#[cfg(all(test ..` to the end of the file) are left out: they are not part
of the library. Names re-exported at the crate root (`crate::Handle`) are
followed to the module lib.rs takes them from.

    ci/import_loops.py crates/percore-lwkt [max files per loop, default 3]

Exits 1 when a loop is larger than the bound, after printing every loop.
"""
import os
import re
import sys


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]) and () not in mods:
                rel = []
            mods[tuple(rel)] = os.path.join(root, f)
    return mods


def body(path):
    out = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith("#[cfg(test)]") or s.startswith("#[cfg(all(test"):
            break
        if s.startswith("//"):
            continue
        out.append(line)
    return "".join(out)


def paths(text):
    """Every `crate::a::b` path, grouped `use crate::{a, b::c}` expanded."""
    found = []
    for m in re.finditer(r"\bcrate::\{([^}]*)\}", text):
        for part in m.group(1).split(","):
            part = part.strip()
            if part:
                found.append(part.split("::"))
    for m in re.finditer(r"\bcrate((?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        found.append(m.group(1).split("::")[1:])
    return found


def main():
    crate = sys.argv[1]
    bound = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    src = os.path.join(crate, "src")
    mods = modules(src)
    root_names = {}
    lib = body(mods[()])
    for m in re.finditer(r"pub use ([a-z_:]+)::\{([^}]*)\}", lib):
        for n in m.group(2).split(","):
            root_names[n.strip()] = tuple(m.group(1).split("::"))
    for m in re.finditer(r"pub use ([a-z_:]+)::([A-Za-z_0-9]+);", lib):
        root_names[m.group(2)] = tuple(m.group(1).split("::"))
    graph = {}
    for mod, path in mods.items():
        deps = set()
        for p in paths(body(path)):
            p = [x for x in p if x not in ("self",)]
            if len(p) == 1 and p[0] in root_names:
                p = list(root_names[p[0]])
            best = None
            for i in range(len(p), 0, -1):
                if tuple(p[:i]) in mods:
                    best = tuple(p[:i])
                    break
            if best is not None and best != mod and best != ():
                deps.add(best)
        graph[mod] = deps
    # Tarjan's strongly connected components.
    index, low, stack, on, comps = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    name = lambda m: "/".join(m) or "lib"
    bad = False
    arrows = sum(len(d) for d in graph.values())
    for c in sorted(comps, key=len, reverse=True):
        if len(c) < 2:
            continue
        tag = "TOO LONG" if len(c) > bound else "ok"
        print(f"{tag}: loop of {len(c)} files: {', '.join(sorted(name(m) for m in c))}")
        bad |= len(c) > bound
    print(f"{crate}: {len(graph)} files, {arrows} internal arrows, largest loop "
          f"{max(len(c) for c in comps)} files (bound {bound})")
    sys.exit(1 if bad else 0)


main()
