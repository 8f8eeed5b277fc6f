"""The package's modules import without cycles: a static check of the import graph (every
`import` of a package module, module level or inside a function) and each module imported alone
in a fresh interpreter.

Why: a cycle hidden in a function-level import works until someone moves that import to the top
or calls the function while the other module is half-initialised; the order the modules load in
then decides whether `import mproc` works. The graph must stay a DAG."""
import ast
import os
import subprocess
import sys

import mproc

PKG = "mproc"
PKG_DIR = os.path.dirname(os.path.abspath(mproc.__file__))  # the build tree: .py links + _mproc


def _modules():
    return sorted(f[:-3] for f in os.listdir(PKG_DIR) if f.endswith(".py"))


def _extensions():
    """Compiled submodules (_mproc): imported by name, no Python imports of their own."""
    return {f.split(".")[0] for f in os.listdir(PKG_DIR) if f.endswith(".so")}


def _imports(name, known):
    """Package modules that module `name` imports, anywhere in its source."""
    with open(os.path.join(PKG_DIR, name + ".py")) as f:
        tree = ast.parse(f.read(), name + ".py")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == PKG:
                    out.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] == PKG:
                base = node.module.split(".")[1:]
            elif node.level == 1:
                base = node.module.split(".") if node.module else []
            else:
                continue
            if base:
                out.add(base[0])
            else:  # from . import x: a submodule, or a name of the package itself
                for a in node.names:
                    if a.name not in _extensions():
                        out.add(a.name if a.name in known else "__init__")
    out.discard(name)
    return out & set(known)


def find_cycle(graph):
    """A cycle of `graph` ({node: set of nodes}) as a list [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def test_find_cycle_finds_one():
    # The checker itself: a cycle hidden two steps deep is found, a DAG passes.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_has_no_cycle():
    known = _modules()
    assert {"context", "process", "pool", "_core", "_worker"} <= set(known)
    assert "_mproc" in _extensions()
    graph = {m: _imports(m, known) for m in known}
    assert "_core" in graph["process"]  # the parser sees the package's imports at all
    # __init__ imports its submodules; a submodule that imports the package back is a cycle.
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_each_module_imports_alone():
    for m in _modules():
        name = PKG if m == "__init__" else PKG + "." + m
        r = subprocess.run([sys.executable, "-c", "import " + name], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, "import %s failed:\n%s" % (name, r.stderr)
