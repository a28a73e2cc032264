"""specjax.perf: c and r measured on a tiny model, compile-free timing."""
import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from specjax import perf
from tests.helpers import tiny_model


def test_measure_costs_gives_c_for_model_drafters_only_and_one_r():
  target = tiny_model()
  drafters = {"self:1": sj.build_drafter("self:1", target), "lookup:3": sj.prompt_lookup(3),
              "none": None}
  costs = perf.measure_costs(target, drafters, k=3, context=16, repeats=2)
  assert set(costs) == set(drafters)
  assert costs["self:1"].c > 0 and costs["lookup:3"].c == 0 and costs["none"].c == 0
  assert len({c.r for c in costs.values()}) == 1 and costs["none"].r > 0
  assert {(c.k, c.context) for c in costs.values()} == {(3, 16)}
  given = perf.measure_costs(target, {"x": None}, k=3, context=16, t_target_1=1.0)["x"]
  assert given.t_target_1 == 1.0  # t(1) not measured again
  c = costs["self:1"]
  assert c.predicted_speedup(0.5) == perf.predicted_speedup(0.5, 3, c.c, c.r)


def test_timed_reruns_a_call_that_compiled():
  calls = []

  def fn():
    calls.append(1)
    return jax.jit(lambda x: x * 2 + len(calls) * 0)(jnp.arange(3.0 + len(calls)))

  out, seconds = perf.timed(fn)
  assert len(calls) == 2 and seconds >= 0  # the first call compiled: timed again
  before = perf.compile_count()
  f = jax.jit(lambda x: x + 1)
  f(jnp.ones(7)).block_until_ready()
  assert perf.compile_count() > before
  x = jnp.ones(7)
  runs = []
  perf.timed(lambda: runs.append(1) or f(x))  # compiled already: run once
  assert len(runs) == 1


def test_machine_names_the_backend():
  m = perf.machine()
  assert m["backend"] == jax.default_backend() and m["cpu_count"] >= 1


def test_a_feature_draft_is_timed_through_its_own_proposal():
  target = tiny_model(num_layers=4)
  draft = sj.feature_draft(target, jax.random.key(0))
  c = perf.measure_costs(target, {"f": draft}, k=3, context=16)["f"].c
  assert 0 < c < 50


def test_iteration_costs_time_the_real_loop_per_draft_length():
  target = tiny_model(seed=1)
  costs = perf.iteration_costs(target, sj.prompt_lookup(3), (0, 1, 3), context=8,
                               new_tokens=8, batch=2)
  assert len(costs) == 3 and all(np.isfinite(c) and c > 0 for c in costs)
  # What the policy takes.
  sj.AdaptiveK(lengths=(0, 1, 3), iteration_costs=costs).for_k(3, 0.0)
