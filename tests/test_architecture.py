"""docs/architecture.md holds: every import in specjax points down its layer table, no cycles."""
import ast
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "architecture.md")


def _layers():
  text = open(DOC).read()
  table = text[text.index("<!-- layers"):text.index("<!-- end layers")]
  layers = {}
  for line in table.splitlines():
    m = re.match(r"\| (\d+) \| ([^|]+) \|", line)
    if m:
      for mod in re.findall(r"`([\w.]+)`", m.group(2)):
        layers[mod] = int(m.group(1))
  return layers


def _modules():
  """{module name: path} for every .py file under specjax/."""
  out = {}
  for root, _, files in os.walk(os.path.join(REPO, "specjax")):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].replace(os.sep, ".")
        out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(root, f)
  return out


def _imports(name, path, modules):
  """The specjax modules `name` imports anywhere in its file (function-level included)."""
  pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.split(".")[0] == "specjax"}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative import
        base = ".".join(pkg.split(".")[:len(pkg.split(".")) - node.level + 1] + [base]).strip(".")
      if base.split(".")[0] != "specjax":
        continue
      for a in node.names:  # `from p import m` imports the submodule p.m when there is one
        found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
  return found - {name}


def _layer(mod, layers):
  prefixes = [p for p in layers if mod == p or mod.startswith(p + ".")]
  assert prefixes, f"{mod} is in no layer of docs/architecture.md: add it to the table"
  return max(prefixes, key=len)


def test_every_import_points_down_the_layer_table():
  layers = _layers()
  modules = _modules()
  bad = []
  for name, path in sorted(modules.items()):
    here = layers[_layer(name, layers)]
    for dep in sorted(_imports(name, path, modules)):
      there = layers[_layer(dep, layers)]
      if there > here:
        bad.append(f"{name} (layer {here}) imports {dep} (layer {there})")
  assert not bad, "\n".join(bad)


def test_the_module_graph_has_no_cycle():
  modules = _modules()
  # Edges into a package's own __init__ from inside it are how Python packages work.
  graph = {n: {d for d in _imports(n, p, modules) if not n.startswith(d + ".")}
           for n, p in modules.items()}
  state = {}

  def visit(n, stack):
    state[n] = "open"
    for d in graph.get(n, ()):
      if state.get(d) == "open":
        raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
      if d not in state:
        visit(d, stack + [d])
    state[n] = "done"

  for n in sorted(graph):
    if n not in state:
      visit(n, [n])


def test_the_table_catches_an_upward_import(tmp_path):
  """The check itself can fail: an import of decoding from models is reported."""
  layers = _layers()
  assert layers[_layer("specjax.models.transformer", layers)] < \
      layers[_layer("specjax.decoding.sampling", layers)]
  f = tmp_path / "m.py"
  f.write_text("def g():\n  from specjax.decoding import sampling\n")
  assert _imports("specjax.models.m", str(f), {"specjax.decoding.sampling"}) == \
      {"specjax.decoding.sampling"}
