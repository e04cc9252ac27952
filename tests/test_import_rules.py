"""The import rules of the layout, read from the source (every import, those under `if TYPE_CHECKING:` too):
the library (catsdogs/) never imports stages/, tools/, bench/ or tests/; the neuron's math
(catsdogs/neuron/) imports no file I/O; no import cycle anywhere in the project."""

import ast
import sys

import pytest

from tests.conftest import ROOT

PACKAGES = ("catsdogs", "stages", "tools", "bench", "tests")
# What the neuron may import from the project: itself, the errors, the process helpers (core count) and,
# for type annotations only, the config that declares its parameters.
NEURON_MAY_IMPORT = ("catsdogs.neuron", "catsdogs.errors", "catsdogs.pipeline.processes")
NEURON_TYPES_ONLY = ("catsdogs.pipeline.config",)
FILE_IO = ("pathlib", "io", "json", "zipfile", "shutil", "tempfile", "csv", "yaml", "ruamel", "PIL", "matplotlib")


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, object]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def type_checking_lines(tree: ast.Module) -> set[int]:
    """The line numbers inside `if TYPE_CHECKING:` blocks."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(name: str, path, modules) -> list[tuple[str, bool]]:
    """(imported module, only for type checking) for every import in the module `name` at `path`:
    `from package import module` counts as an import of the module."""
    tree = ast.parse(path.read_text())
    typing_only = type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno in typing_only))
            found += [
                (f"{node.module}.{alias.name}", node.lineno in typing_only)
                for alias in node.names
                if f"{node.module}.{alias.name}" in modules
            ]
    return found


def project_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {
        name: {target for target, _ in imports(name, path, modules) if target in modules and target != name}
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_there_is_no_import_cycle():
    assert cycles(project_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_type_only_import():
    """The rule's own check: a -> b -> c -> a is one cycle, d outside it."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [["a", "b", "c"]]


def test_the_library_never_imports_stages_tools_bench_or_tests():
    modules = project_modules()
    wrong = [
        (name, target)
        for name, path in modules.items()
        if name.split(".")[0] == "catsdogs"
        for target, _ in imports(name, path, modules)
        if target.split(".")[0] in ("stages", "tools", "bench", "tests")
    ]
    assert wrong == []


@pytest.mark.parametrize(
    "name",
    sorted(name for name in project_modules() if name.startswith("catsdogs.neuron.") or name == "catsdogs.neuron"),
)
def test_the_neurons_math_imports_no_file_io(name):
    modules = project_modules()
    for target, typing_only in imports(name, modules[name], modules):
        top = target.split(".")[0]
        assert top not in FILE_IO, f"{name} imports {target}"
        if top == "catsdogs":
            allowed = NEURON_MAY_IMPORT + (NEURON_TYPES_ONLY if typing_only else ())
            assert target == "catsdogs" or target.startswith(allowed), f"{name} imports {target}"
