"""Decontamination: drop training text that shares a word n-gram with an eval set.

The eval sets are HumanEval and ACLSum val/test (`eval_texts`); n-grams are compared as stable
uint64 hashes, so the filter is the same on every machine and in every process.
"""
import dataclasses
import functools
import hashlib
import re
from typing import Dict, Iterable, List

import numpy as np

from specjax.evals.datasets import aclsum_split, humaneval_problems, paper_text

NGRAM, MIN_SHORT_NGRAM = 13, 8
_WORD = re.compile(r"\w+")
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd: the n-gram hash below is a polynomial mod 2**64


@functools.lru_cache(maxsize=1 << 17)  # all corpora here hold ~81k distinct words
def stable_hash64(s: str) -> int:  # stable across processes and machines, unlike hash(str)
  return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


def _words(text: str) -> List[str]:
  return _WORD.findall(text.lower())


def _hashes(words: List[str]) -> np.ndarray:
  return np.fromiter(map(stable_hash64, words), np.uint64, len(words))


def _ngram_hashes(h: np.ndarray, n: int) -> np.ndarray:
  """Stable hashes of all word n-grams: sum_i h[i] * MUL**(n-1-i) mod 2**64."""
  if len(h) < n:
    return np.zeros(0, np.uint64)
  acc = h[:len(h) - n + 1].copy()
  for i in range(1, n):
    acc = acc * _MUL + h[i:len(h) - n + 1 + i]
  return acc


def _informative(words: List[str], n: int) -> np.ndarray:
  """Which n-grams have at least half their words >= 2 characters long and not numbers.

  Eval n-grams failing this are not matched: runs like "1 2 3 ... 13", "0 0 0 ...", primes
  (HumanEval tests) or "l a t e x i t ..." (PDF-parse debris in ACLSum papers) occur in
  unrelated files and papers: without this rule 15 of the 1,329 documents were dropped (3
  stdlib files, 6 doc pages, 6 papers), 14 of them spuriously; with it, only the genuine one (a
  train paper sharing whole sentences of its experimental setup with a test paper by its authors).
  """
  good = np.fromiter((len(w) >= 2 and not w.isdigit() for w in words), np.int64, len(words))
  c = np.concatenate([[0], np.cumsum(good)])
  return 2 * (c[n:] - c[:-n]) >= n


@dataclasses.dataclass(frozen=True)
class EvalFilter:
  """Eval-set word n-grams (lowercased `\\w+` words) as sorted uint64 hashes per length n."""
  tables: Dict[int, np.ndarray]

  def contaminated(self, text: str) -> bool:
    h = _hashes(_words(text))
    for n, table in self.tables.items():
      g = _ngram_hashes(h, n)
      if g.size and np.any(table[np.minimum(np.searchsorted(table, g), len(table) - 1)] == g):
        return True
    return False


def eval_texts() -> Iterable[str]:
  """HumanEval problems and ACLSum val/test papers (summaries, title, sections, full text)."""
  for p in humaneval_problems():
    yield from (p["prompt"], p["canonical_solution"], p["test"],
                p["prompt"] + p["canonical_solution"])
  for split in ("val", "test"):
    for row in aclsum_split(split):
      yield from [row["title"], *row["summary"].values(), paper_text(row)]
      # Whole sections, not sentences: the short-text rule on single sentences matched
      # stock phrases ("the rest of this paper is organized as follows") in train papers.
      yield from (" ".join(s) for s in row["sentences"].values())


def eval_filter(n: int = NGRAM, min_n: int = MIN_SHORT_NGRAM) -> EvalFilter:
  """Word n-grams of `eval_texts()`. A text shorter than n words (a title, a short solution)
  contributes its whole word sequence instead, if that has >= min_n words."""
  grams: Dict[int, List[np.ndarray]] = {}
  for text in eval_texts():
    words = _words(text)
    k = min(n, len(words))
    if k < min_n:
      continue
    grams.setdefault(k, []).append(_ngram_hashes(_hashes(words), k)[_informative(words, k)])
  return EvalFilter({k: np.unique(np.concatenate(v)) for k, v in sorted(grams.items())})
