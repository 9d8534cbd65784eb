"""The three layers of `helpers` and who imports whom, read from the code with `ast`: `python -m helpers.tools.layers`
prints the graph as a Mermaid chart, `--check` exits 1 naming every import from a lower layer into a higher one,
`--write` renders the chart into docs/development.md."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
LAYERS = ("core", "notebook", "tools")  # lowest first: a module may import its own layer and those before it
START, END = "<!-- layers:start -->", "<!-- layers:end -->"


def layer_of(module: str) -> str | None:
    """Return the layer of a helpers module ('core', 'notebook', 'tools'); None for the package's facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def graph() -> dict[str, set[str]]:
    """Return {module: the helpers modules it imports anywhere in its code} for every module of the package."""
    files = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in sorted(PACKAGE.rglob("*.py"))}
    edges = {}
    for me, path in files.items():
        package = me if path.name == "__init__.py" else me.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        edges[me] = found & set(files) - {me}
    return edges


def violations(edges: dict[str, set[str]] | None = None) -> list[str]:
    """Return 'a imports b (layer x above layer y)' for every import from a lower layer into a higher one."""
    return [f"{mod} imports {t} (layer {layer_of(t)} is above layer {layer_of(mod)})"
            for mod, targets in (graph() if edges is None else edges).items() for t in sorted(targets)
            if layer_of(mod) and layer_of(t) and LAYERS.index(layer_of(t)) > LAYERS.index(layer_of(mod))]


def mermaid() -> str:
    """Return the import graph as a Mermaid flowchart, one box per layer, packages' own __init__ left out."""
    edges = {m: t for m, t in graph().items() if layer_of(m) and m != f"helpers.{layer_of(m)}"}
    node = lambda m: m.replace(".", "_")  # noqa: E731
    lines = ["```mermaid", "flowchart BT"]
    for layer in LAYERS:
        lines += [f"  subgraph {layer}", *(f"    {node(m)}[{m.split('.', 2)[-1]}]" for m in edges
                                          if layer_of(m) == layer), "  end"]
    lines += [f"  {node(m)} --> {node(t)}" for m, targets in edges.items() for t in sorted(targets & set(edges))]
    return "\n".join(lines + ["```"])


def main(argv=None) -> int:
    """Print the chart, check the layers (--check) or render the chart into the docs (--write)."""
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        bad = violations()
        print("\n".join(bad) or "every import points to its own layer or one below it")
        return 1 if bad else 0
    if "--write" in args:
        page = PACKAGE.parent / "docs" / "development.md"
        text = page.read_text()
        new = text[:text.index(START) + len(START)] + "\n" + mermaid() + "\n" + text[text.index(END):]
        page.write_text(new)
        print("docs/development.md:", "updated" if new != text else "already up to date")
    else:
        print(mermaid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
