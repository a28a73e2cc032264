"""The engine both loops share: the traced knobs (sampling values, stop ids) and their programs."""
import jax
import numpy as np
import pytest

import specjax as sj
from specjax.decoding import autoregressive as ar
from specjax.decoding import engine, speculative
from tests.helpers import tiny_model

PROMPTS = [[1, 5, 2, 7], [3, 4]]


def _run(method, model, sampling, eos_id, seed=0):
  kw = dict(max_new_tokens=8, sampling=sampling, key=jax.random.key(seed), eos_id=eos_id)
  if method == "ars":
    return sj.generate(model, PROMPTS, **kw)
  return sj.speculative_generate(model, sj.prompt_lookup(2), PROMPTS, k=2, **kw)


@pytest.mark.parametrize("method,module", [("ars", ar), ("sps", speculative)])
def test_greedy_any_top_p_and_any_few_stop_ids_share_one_program(method, module):
  model = tiny_model()
  jax.clear_caches()
  for sampling, eos_id in ((sj.Sampling(1.0, top_p=0.8), None),
                           (sj.Sampling(0.8, top_p=0.95), [3]),
                           (sj.Sampling(0.0), [3, 7, 9, 11]),
                           (sj.Sampling(0.8), None)):
    _run(method, model, sampling, eos_id)
  assert module._prefill_jit._cache_size() == 1
  assert module._loop_jit._cache_size() == 1
  # top_k (a shape) and more stop ids than the slots make other programs.
  _run(method, model, sj.Sampling(0.8, top_k=5), None)
  _run(method, model, sj.Sampling(0.8), [1, 2, 3, 4, 5])
  assert module._loop_jit._cache_size() == 3
  jax.clear_caches()


@pytest.mark.parametrize("method", ["ars", "sps"])
def test_a_shared_program_uses_each_calls_own_values(method):
  """The values reach the program: each call's output equals a fresh compilation's."""
  model = tiny_model()
  calls = [(sj.Sampling(1.0, top_p=0.8), None), (sj.Sampling(0.3, top_p=0.95), [3]),
           (sj.Sampling(2.0, top_p=0.5), [4, 9]), (sj.Sampling(0.0), None),
           (sj.Sampling(0.7), [4])]
  shared = [_run(method, model, s, eos) for s, eos in calls]
  for (s, eos), out in zip(calls, shared):
    jax.clear_caches()
    fresh = _run(method, model, s, eos)
    np.testing.assert_array_equal(out.tokens, fresh.tokens)
    np.testing.assert_array_equal(out.lengths, fresh.lengths)
  # And they differ between calls (the values are not those of the first compilation).
  assert not np.array_equal(shared[0].tokens, shared[1].tokens)


@pytest.mark.parametrize("method", ["ars", "sps"])
def test_a_stop_id_given_after_the_program_compiled_stops_the_row(method):
  model = tiny_model()
  free = _run(method, model, sj.Sampling(0.0), None)
  row = free.row(0)
  stop = row[3]
  stopped = _run(method, model, sj.Sampling(0.0), [stop])
  assert stopped.row(0) == row[:row.index(stop) + 1]


def test_knobs_pad_stop_ids_to_whole_slots():
  knobs = engine.Knobs.of(sj.Sampling(0.0), None)
  assert knobs.stop_ids_N.tolist() == [-1] * engine.STOP_SLOTS
  knobs = engine.Knobs.of(sj.Sampling(0.7, top_p=0.9), (2, 5, 6, 8, 9))
  assert knobs.stop_ids_N.tolist() == [2, 5, 6, 8, 9, -1, -1, -1]
  assert float(knobs.sampling.temperature) == pytest.approx(0.7)
  assert knobs.sampling.nucleus and not knobs.sampling.greedy


@pytest.mark.parametrize("method", ["ars", "sps", "feature"])
def test_compile_only_compiles_both_programs_and_runs_neither(method):
  from specjax import perf
  model = tiny_model()
  s = sj.Sampling(0.7, top_p=0.9)
  if method == "feature":
    draft = sj.feature_draft(model, jax.random.key(1), feature_layers=(0, 1))
    call = lambda: sj.speculative_generate(model, draft, PROMPTS, k=2, max_new_tokens=8,
                                           sampling=s, key=jax.random.key(0), eos_id=[3])
  else:
    call = lambda: _run(method, model, s, [3])
  jax.clear_caches()
  with engine.record_phases() as log, engine.compile_only():
    before = perf.compile_count()
    zeros = call()
  assert perf.compile_count() > before and log == []  # compiled; no program ran
  assert zeros.tokens.shape == (2, 8) and not np.any(zeros.tokens)
  before = perf.compile_count()
  out = call()
  assert perf.compile_count() == before, "the real call compiled again"
  assert np.any(out.tokens)
  jax.clear_caches()
