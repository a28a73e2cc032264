"""Chat prompts for self-distillation, built from the offline sources and decontaminated.

No chat prompt set (ShareGPT, UltraChat, Alpaca) exists offline, so requests are made from the
training sources (`sources`):
  code_complete  a stdlib function's signature + docstring in the HumanEval task's own format
                 (`evals.tasks.code_prompt`: "Complete the following Python function", the
                 reply started with a python fence)
  code_write     "Write a Python function `name(args)` that ..." from its docstring
  code_explain   "Explain what this Python function does" + its source
  docs_explain   "Explain ..." a section of the Python docs, by its title and page
  docs_summary   "Summarize this section of the Python documentation" + its text
  paper_summary  the summarization task's own question on an ACLSum *train* paper
  section_summary "Summarize this section of a paper" + a train paper's section
Each stdlib function gives one request (its kind chosen by a hash of its name); every doc
section and paper section gives one. A prompt sharing a word 13-gram with HumanEval or ACLSum
val/test is dropped (`decontam.EvalFilter`); ~`heldout_fraction` of them, chosen by a hash of
the id, are held out for acceptance measurements. The order is a hash order: the same on every
machine, and any prefix is a mix of every kind.
"""
import ast
import dataclasses
import re
import textwrap
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from specjax.evals import datasets, tasks
from specjax.models.tokenizer import chat_prompt
from specjax.training.decontam import EvalFilter, stable_hash64
from specjax.training.sources import Doc, source_docs

KINDS = ("code_complete", "code_write", "code_explain", "docs_explain", "docs_summary",
         "paper_summary", "section_summary")
_CODE_KINDS = KINDS[:3]
_MAX_FUNCTION_LINES = 60
_MAX_SECTION_WORDS = 350


@dataclasses.dataclass(frozen=True)
class ChatPrompt:
  id: str      # unique and stable, e.g. "code_write:json/decoder.py:JSONDecoder.decode"
  kind: str    # one of KINDS
  user: str    # the user turn (what decontamination reads)
  text: str    # the whole prompt: chat template, plus the reply's opening where the task has one


def _prompt(kind: str, name: str, user: str, reply_start: str = "") -> ChatPrompt:
  return ChatPrompt(f"{kind}:{name}", kind, user, chat_prompt(user, system=None) + reply_start)


# --- code -------------------------------------------------------------------------------------
def _signature(fn: ast.FunctionDef) -> str:
  args = ast.unparse(fn.args)
  ret = f" -> {ast.unparse(fn.returns)}" if fn.returns is not None else ""
  return f"def {fn.name}({args}){ret}:"


def _functions(doc: Doc) -> Iterable[Tuple[str, ast.FunctionDef]]:
  """(qualified name, node) of the public functions and methods with a docstring."""
  try:
    tree = ast.parse(doc.text)
  except (SyntaxError, ValueError):
    return
  for node in tree.body:
    members = [(node.name + ".", n) for n in node.body] if isinstance(node, ast.ClassDef) else \
        [("", node)]
    for prefix, fn in members:
      if isinstance(fn, ast.FunctionDef) and not fn.name.startswith("_") and \
          len(ast.get_docstring(fn) or "") >= 20:
        yield prefix + fn.name, fn


def code_prompts(docs: Sequence[Doc]) -> List[ChatPrompt]:
  out = []
  for doc in docs:
    lines = doc.text.splitlines()
    for qual, fn in _functions(doc):
      name = f"{doc.name}:{qual}"
      source = "\n".join(lines[fn.lineno - 1:fn.end_lineno])
      if fn.end_lineno - fn.lineno + 1 > _MAX_FUNCTION_LINES:
        continue
      docstring = ast.get_docstring(fn)
      kind = _CODE_KINDS[stable_hash64(name) % len(_CODE_KINDS)]
      if kind == "code_complete":  # the HumanEval task's format, reply opened with a fence
        body = textwrap.indent(f'"""{docstring}\n"""', "    ")
        user = tasks.CODE_REQUEST.format(prompt=f"{_signature(fn)}\n{body}\n")
        out.append(_prompt(kind, name, user, tasks.FENCE + "python\n"))
      elif kind == "code_write":
        first = docstring.split("\n\n")[0].replace("\n", " ")
        out.append(_prompt(kind, name, f"Write a Python function `{fn.name}"
                           f"({ast.unparse(fn.args)})` that does the following: {first}"))
      else:
        out.append(_prompt(kind, name, "Explain what this Python function does:\n```python\n"
                           f"{textwrap.dedent(source)}\n```"))
  return out


# --- the Python docs --------------------------------------------------------------------------
_ROLE = re.compile(r":?[\w.]+:`~?([^`]*)`")  # reST roles: :mod:`x` -> x
_UNDERLINE = re.compile(r"^([=\-~^\"'*+#])\1{2,}\s*$")


def sections(text: str) -> List[Tuple[str, str]]:
  """(title, body) of each reST section: a title line underlined by a run of one punctuation."""
  lines = text.splitlines()
  heads = [i for i in range(1, len(lines))
           if _UNDERLINE.match(lines[i]) and lines[i - 1].strip() and
           len(lines[i].strip()) >= len(lines[i - 1].strip()) and
           not _UNDERLINE.match(lines[i - 1])]
  out = []
  for j, i in enumerate(heads):
    end = heads[j + 1] - 1 if j + 1 < len(heads) else len(lines)
    out.append((lines[i - 1].strip(), "\n".join(lines[i + 1:end]).strip()))
  return out


def _clip_words(text: str, n: int) -> str:
  words = text.split(" ")
  return text if len(words) <= n else " ".join(words[:n]) + " ..."


def docs_prompts(docs: Sequence[Doc]) -> List[ChatPrompt]:
  out = []
  for doc in docs:
    page = doc.name.split("/")[-1].removesuffix(".rst.txt")
    for j, (title, body) in enumerate(sections(doc.text)):
      if len(body.split()) < 40:
        continue
      name = f"{doc.name}:{j}"
      if stable_hash64(name) % 2:
        title = _ROLE.sub(r"\1", title).strip("`*: ")
        out.append(_prompt("docs_explain", name, f"Explain {title} (from the "
                           f"Python documentation's '{page}' page)."))
      else:
        out.append(_prompt("docs_summary", name, "Summarize this section of the Python "
                           f"documentation:\n\n{title}\n\n{_clip_words(body, _MAX_SECTION_WORDS)}"))
  return out


# --- ACLSum train papers ----------------------------------------------------------------------
def paper_prompts(rows: Sequence[Dict]) -> List[ChatPrompt]:
  """The summarization task's question on each train paper, and one request per section."""
  out = []
  for row in rows:
    out.append(_prompt("paper_summary", row["id"], tasks.summary_turn(row)))
    parts = datasets.paper_text(row).split("\n\n## ")[1:]
    for j, part in enumerate(parts):
      title, _, body = part.partition("\n\n")
      if len(body.split()) >= 60:
        out.append(_prompt("section_summary", f"{row['id']}:{j}", "Summarize this section of a "
                           f"paper:\n\n{title}\n\n{_clip_words(body, _MAX_SECTION_WORDS)}"))
  return out


# --- all of them ------------------------------------------------------------------------------
@dataclasses.dataclass
class PromptSet:
  train: List[ChatPrompt]
  heldout: List[ChatPrompt]
  stats: Dict[str, Dict[str, int]]  # per kind: made, dropped (contaminated), train, heldout


def build_prompts(eval_filter: EvalFilter, sources: Sequence[str] = ("code", "prose", "aclsum"),
                  cache_dir: Optional[str] = None, limit_bytes: Optional[int] = None,
                  heldout_fraction: float = 0.02) -> PromptSet:
  """Every source's prompts, decontaminated, split, in hash order."""
  made: List[ChatPrompt] = []
  for source in sources:
    if source == "aclsum":
      made += paper_prompts(datasets.aclsum_split("train"))
    elif source == "code":
      made += code_prompts(source_docs("code", cache_dir, limit_bytes))
    elif source == "prose":
      made += docs_prompts(source_docs("prose", cache_dir, limit_bytes))
    else:
      raise ValueError(f"unknown prompt source {source!r}; expected code, prose or aclsum")
  return split_prompts(made, eval_filter, heldout_fraction)


def split_prompts(made: Sequence[ChatPrompt], eval_filter: EvalFilter,
                  heldout_fraction: float = 0.02) -> PromptSet:
  """Decontaminated (a user turn sharing a word 13-gram with an eval set is dropped), split by
  a hash of the id, in hash order; one prompt per id (a name defined twice, as a property and
  its setter, keeps its first definition)."""
  made = list({p.id: p for p in reversed(made)}.values())
  stats = {k: dict(made=0, dropped=0, train=0, heldout=0) for k in KINDS}
  train, heldout = [], []
  for p in sorted(made, key=lambda p: stable_hash64(p.id)):
    s = stats[p.kind]
    s["made"] += 1
    if eval_filter.contaminated(p.user):
      s["dropped"] += 1
      continue
    held = stable_hash64("heldout:" + p.id) / 2**64 < heldout_fraction
    (heldout if held else train).append(p)
    s["heldout" if held else "train"] += 1
  return PromptSet(train, heldout, {k: v for k, v in stats.items() if v["made"]})
