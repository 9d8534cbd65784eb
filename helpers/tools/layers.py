"""The three layers of `helpers` and who imports whom, read from the code with `ast`.

    python -m helpers.tools.layers            # print the import graph as a Mermaid chart
    python -m helpers.tools.layers --check    # exit 1 naming every import from a lower layer into a higher one
    python -m helpers.tools.layers --write    # render the chart into docs/development.md
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
LAYERS = ("core", "notebook", "tools")  # lowest first: a module may import its own layer and those before it
START, END = "<!-- layers:start -->", "<!-- layers:end -->"


def module_name(path: Path) -> str:
    """Return the dotted module name of a file under helpers/."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """Return the layer of a helpers module ('core', 'notebook', 'tools'); None for the package's facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def imports(path: Path) -> set[str]:
    """Return the helpers modules a file imports, at any depth of its code (function bodies included)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {f"{target}.{a.name}" if (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).exists()
                      or (PACKAGE.parent / (f"{target}.{a.name}".replace(".", "/") + ".py")).exists() else target
                      for a in node.names}
    return {m for m in found if m == "helpers" or m.startswith("helpers.")}


def graph() -> dict[str, set[str]]:
    """Return {module: the helpers modules it imports} for every module of the package."""
    return {module_name(p): imports(p) - {module_name(p)} for p in sorted(PACKAGE.rglob("*.py"))}


def violations(edges: dict[str, set[str]] | None = None) -> list[str]:
    """Return 'a imports b (layer x above layer y)' for every import from a lower layer into a higher one."""
    out = []
    for mod, targets in (graph() if edges is None else edges).items():
        mine = layer_of(mod)
        for t in sorted(targets):
            theirs = layer_of(t)
            if mine and theirs and LAYERS.index(theirs) > LAYERS.index(mine):
                out.append(f"{mod} imports {t} (layer {theirs} is above layer {mine})")
    return out


def mermaid(edges: dict[str, set[str]] | None = None) -> str:
    """Return the import graph as a Mermaid flowchart, one box per layer, packages' own __init__ left out."""
    edges = graph() if edges is None else edges
    short = lambda m: m.split(".", 2)[-1]  # noqa: E731 - helpers.core.runs -> runs
    node = lambda m: m.replace(".", "_")  # noqa: E731
    lines = ["```mermaid", "flowchart BT"]
    for layer in LAYERS:
        members = [m for m in edges if layer_of(m) == layer and m != f"helpers.{layer}"]
        lines.append(f"  subgraph {layer}")
        lines += [f"    {node(m)}[{short(m)}]" for m in members]
        lines.append("  end")
    for m, targets in edges.items():
        for t in sorted(targets):
            if layer_of(m) and layer_of(t) and t in edges and t != f"helpers.{layer_of(t)}" \
                    and m != f"helpers.{layer_of(m)}":
                lines.append(f"  {node(m)} --> {node(t)}")
    lines.append("```")
    return "\n".join(lines)


def write_docs(page: Path = PACKAGE.parent / "docs" / "development.md") -> bool:
    """Render the chart between the layer markers of docs/development.md; return whether it changed."""
    text = page.read_text()
    i, j = text.index(START) + len(START), text.index(END)
    new = text[:i] + "\n" + mermaid() + "\n" + text[j:]
    if new != text:
        page.write_text(new)
    return new != text


def main(argv=None) -> int:
    """Print the chart, check the layers (--check) or render the chart into the docs (--write)."""
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        bad = violations()
        print("\n".join(bad) or "every import points to its own layer or one below it")
        return 1 if bad else 0
    if "--write" in args:
        print("docs/development.md:", "updated" if write_docs() else "already up to date")
        return 0
    print(mermaid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
