"""The time accounting: prefill and loop timed apart, the loop split by measured call costs."""
import jax
import numpy as np
import pytest

import specjax as sj
from specjax import perf
from tests.helpers import tiny_model


def _records(sps: bool):
  return [dict(seconds=1.0, prefill_seconds=0.3, loop_seconds=0.6, prefill_tokens=0 if sps else 1,
               compile_seconds=2.0, lengths=[11], target_calls=4 if sps else 10)]


def test_account_splits_the_loop_by_counted_calls_and_measured_costs():
  cost = dict(t_target_1_ms=10.0, c=0.05, r=1.5)
  sps = perf.account(_records(True), k=4, cost=cost, sps=True)
  assert sps["target_s"] == pytest.approx(4 * 0.010 * 1.5)
  assert sps["draft_s"] == pytest.approx(4 * 4 * 0.05 * 0.010)
  assert sps["loop_rest_s"] == pytest.approx(0.6 - 0.06 - 0.008)
  assert sps["host_s"] == pytest.approx(0.1) and sps["compile_s"] == 2.0
  assert sps["decode_ms_per_token"] == pytest.approx(600 / 11)
  ars = perf.account(_records(False), k=4, cost=cost, sps=False)
  assert ars["target_s"] == pytest.approx(10 * 0.010) and ars["draft_s"] == 0.0
  assert ars["decode_ms_per_token"] == pytest.approx(600 / 10)  # the prefill's token left out
  assert perf.account([dict(seconds=1.0, lengths=[3], target_calls=1)], 4, cost, True) == {}
  assert "target_s" not in perf.account(_records(True), 4, None, True)


def test_loop_efficiency_is_one_when_the_loop_costs_only_its_calls():
  # mean accepted length 3, k 4, c 0.1, r 1.5: predicted 3 / 1.9
  assert perf.loop_efficiency(3 / 1.9, 3.0, 4, 0.1, 1.5) == pytest.approx(1.0)
  assert perf.loop_efficiency(1.2, 3.0, 4, 0.1, 1.5) == pytest.approx(1.2 * 1.9 / 3)


@pytest.mark.parametrize("sps", [False, True])
def test_the_parts_add_up_to_the_wall_time(sps):
  """Tolerance: the prefill and the loop, timed apart, add up to within 30% (+ 20 ms of host
  work) of the same call timed whole; medians of 5, on a shared machine. (A whole call of a
  few ms here, against 20 ms of slack: this fails on what is not noise, such as the whole call
  timed without waiting for it, as it once was.)"""
  model = tiny_model()
  prompt = [list(range(1, 40))]
  call = (lambda: sj.speculative_generate(model, sj.prompt_lookup(2), prompt, k=3,
                                          max_new_tokens=45, eos_id=None)) if sps else (
      lambda: sj.generate(model, prompt, max_new_tokens=45, eos_id=None))
  out, t = perf.timed_generation(call)
  whole = np.median([perf.timed(call)[1] for _ in range(5)])
  parts = [perf.timed_generation(call)[1] for _ in range(5)]
  split = np.median([p.prefill_seconds + p.loop_seconds for p in parts])
  assert abs(split - whole) <= 0.3 * whole + 0.02, (split, whole)
  assert all(p.prefill_seconds > 0 and p.loop_seconds > 0 for p in parts)
  assert all(p.prefill_seconds + p.loop_seconds <= p.seconds for p in parts)
  assert t.prefill_tokens == (0 if sps else 1) and t.compile_seconds > 0, t
  again = perf.timed_generation(call)[1]
  assert again.compile_seconds == 0.0, "a compiled call reports no compilation"
  np.testing.assert_array_equal(perf.timed_generation(call)[0].tokens, out.tokens)


def test_timing_a_generation_waits_for_all_its_arrays():
  # `timed` blocks on what the call returns: a GenerateOutput must be a pytree of its arrays,
  # else block_until_ready returns at once and the call is timed as its dispatch only
  out = sj.generate(tiny_model(), [[1, 2, 3]], max_new_tokens=4, eos_id=None)
  leaves = jax.tree_util.tree_leaves(out)
  assert any(x is out.tokens for x in leaves) and any(x is out.lengths for x in leaves)
  assert any(x is out.stats.new_tokens_B for x in leaves)
  assert jax.block_until_ready(out) is not None


def test_timed_generation_refuses_what_is_not_one_generation():
  with pytest.raises(ValueError, match="one generation per call, this one ran 0"):
    perf.timed_generation(lambda: np.zeros(3))


def test_timed_generation_compiles_ahead_and_generates_once():
  """A call whose programs are not compiled yet runs one real generation, not a warm-up too."""
  from specjax.decoding import engine
  model = tiny_model()
  modes = []

  def call():
    modes.append(engine._COMPILE_ONLY.get())
    return sj.generate(model, [[1, 2, 3, 4, 5]], max_new_tokens=7, eos_id=None)

  jax.clear_caches()
  out, t = perf.timed_generation(call)
  assert modes == [True, False], modes  # one compile-only call, then one generation
  assert t.compile_seconds > 0
  np.testing.assert_array_equal(out.tokens, sj.generate(model, [[1, 2, 3, 4, 5]],
                                                        max_new_tokens=7, eos_id=None).tokens)
  modes.clear()
  assert perf.timed_generation(call)[1].compile_seconds == 0.0 and modes == [True, False]
