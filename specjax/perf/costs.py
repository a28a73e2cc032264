"""The cost model of speculative sampling (Leviathan et al. 2023; PAPER.md), measured.

  c = t_draft / t_target(1)       a drafted token's cost, in target calls of one token
  r = t_target(k + 1) / t_target(1)  the verification call's cost, in the same unit
  predicted speedup = (1 - a^(k+1)) / ((1 - a)(k c + r))

with a the per-position acceptance (`Stats.alpha`). Every bench and the Table 1
report measure c and r with `measure_costs` and predict with `predicted_speedup`.
"""
import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from specjax.decoding.adaptive import AdaptiveK
from specjax.decoding.autoregressive import generate
from specjax.decoding.drafters import Features, ModelDrafter
from specjax.decoding.feature_drafter import drafter_of
from specjax.decoding.sampling import Sampling
from specjax.decoding.speculative import speculative_generate
from specjax.models.kv_cache import init_cache
from specjax.models.model import Model
from specjax.models.transformer import forward
from specjax.perf.timing import median_seconds, timed_generation


def seconds_per_call(model, tokens_per_call: int, context: int = 64, calls: int = 16,
                     repeats: int = 3, batch: int = 1) -> float:
  """Seconds per forward call of `tokens_per_call` tokens per row, on `batch` rows (default
  1), after `context` tokens.

  `model`: anything with `params` and `config` (a `Model`, a `ModelDrafter`). The
  calls run inside one jitted fori_loop (as in the samplers' loops), each rolling
  the cache back so that every call sees the same context length.
  """
  cfg = model.config
  cache = init_cache(cfg, batch, context + tokens_per_call + 64)
  _, cache = forward(model.params, cfg, jnp.ones((batch, context), jnp.int32), cache)
  toks = jnp.ones((batch, tokens_per_call), jnp.int32)

  @jax.jit
  def run(params, cache):
    def body(i, carry):
      cache, acc = carry
      logits, new = forward(params, cfg, toks + i % 2, cache)
      return new.rollback(cache.length_B), acc + logits[0, -1, 0]
    return jax.lax.fori_loop(0, calls, body, (cache, jnp.zeros((), jnp.float32)))[1]

  return median_seconds(lambda: run(model.params, cache).block_until_ready(), repeats) / calls


def draft_seconds_per_token(drafter, k: int, context: int = 64) -> float:
  """A drafter's seconds per drafted token, as the loop calls it.

  A draft model (`Model`, `ModelDrafter`): one 2-token call, then k - 1
  one-token calls. A drafter with params of another kind (a feature draft):
  its own `propose` of k tokens and `commit`, timed in a jitted loop. A
  drafter without params (prompt lookup) costs 0 here: its search is part of
  the loop's own cost.
  """
  if not (hasattr(drafter, "params") and hasattr(drafter, "config")):
    return 0.0
  if isinstance(drafter, Model):
    drafter = drafter_of(drafter)
  if isinstance(drafter, ModelDrafter):
    return (seconds_per_call(drafter, 2, context)
            + (k - 1) * seconds_per_call(drafter, 1, context)) / k
  return _proposal_seconds(drafter, k, context) / k


def _proposal_seconds(drafter, k: int, context: int, calls: int = 8, repeats: int = 3) -> float:
  """Seconds per propose(k) + commit of a drafter at batch 1 after `context` tokens."""
  layers = tuple(drafter.feature_layers)
  D = drafter.config.d_model

  def features(T, start):  # zero features of the right shape (a drafter that reads them)
    return {"features": Features(jnp.zeros((1, T, len(layers), D), drafter.config.jnp_dtype),
                                 jnp.full((1,), start, jnp.int32))} if layers else {}

  capacity = context + k + 64
  prompt = jnp.ones((1, context), jnp.int32)
  n_B = jnp.full((1,), context, jnp.int32)
  state = drafter.init(prompt, n_B, capacity, **features(context, 0))
  seq = jnp.ones((1, capacity), jnp.int32)

  @jax.jit
  def run(drafter, state):
    def body(i, carry):
      state, acc = carry
      toks, q, state = drafter.propose(state, seq, n_B, k, Sampling(0.0), jax.random.key(0))
      state = drafter.commit(state, n_B, **features(k + 1, context - 1))
      return state, acc + toks[0, 0] + q[0, 0, 0]
    return jax.lax.fori_loop(0, calls, body, (state, jnp.zeros((), jnp.float32)))[1]

  return median_seconds(lambda: run(drafter, state).block_until_ready(), repeats) / calls


@dataclasses.dataclass(frozen=True)
class Costs:
  """c and r of one drafter with one target at one context, and the target's t(1)."""
  k: int
  context: int
  t_target_1: float  # seconds per 1-token target call
  c: float
  r: float

  def predicted_speedup(self, alpha: float) -> float:
    return predicted_speedup(alpha, self.k, self.c, self.r)


def measure_costs(target, drafters: Mapping[str, Any], k: int, context: int, repeats: int = 1,
                  t_target_1: Optional[float] = None) -> Dict[str, Costs]:
  """{name: Costs} for each drafter: medians over `repeats` rounds of ratios formed per round.

  The machine may be shared, so every round measures t(1), t(k + 1) and each
  draft side by side. A drafter given as None gets c = 0 (r alone). A given
  `t_target_1` (seconds) is used instead of measuring t(1) again.
  """
  rounds = []
  for _ in range(repeats):
    t1 = t_target_1 or seconds_per_call(target, 1, context)
    tk1 = seconds_per_call(target, k + 1, context)
    rounds.append((t1, tk1, {name: 0.0 if d is None else draft_seconds_per_token(d, k, context)
                             for name, d in drafters.items()}))
  out = {}
  for name in drafters:
    out[name] = Costs(k=k, context=context, t_target_1=float(np.median([x[0] for x in rounds])),
                      c=float(np.median([x[2][name] / x[0] for x in rounds])),
                      r=float(np.median([x[1] / x[0] for x in rounds])))
  return out


def iteration_costs(target, drafter, lengths: Sequence[int], context: int,
                    new_tokens: int = 32, repeats: int = 1, batch: int = 1) -> Tuple[float, ...]:
  """Per draft length m in `lengths`: seconds per iteration of the real speculative loop at
  fixed k = m (drafting, the verification call, warping, acceptance, the drafter's commit,
  bookkeeping) over ArS's seconds per decode step, both from the loop program alone
  (`timed_generation`), on `batch` rows of one `context`-token prompt, greedy, no stop id: what
  `sj.AdaptiveK(iteration_costs=...)` takes. Medians over `repeats` rounds of ratios."""
  prompt = [np.random.default_rng(0).integers(1, target.config.vocab_size, context).tolist()]
  prompt = prompt * batch
  gen = dict(max_new_tokens=new_tokens, sampling=Sampling(0.0), eos_id=None)

  def per_iteration(fn):
    out, t = timed_generation(fn)
    return t.loop_seconds / max(int(out.stats.target_calls), 1)

  # m = 0 (ArS steps inside the speculative loop) runs as adaptive K that never drafts.
  never = AdaptiveK(lengths=(0, 1), iteration_costs=(1.0, 1e9))
  spec = lambda m: speculative_generate(target, drafter, prompt, k=max(m, 1),
                                        adaptive_k=None if m else never, **gen)
  rounds = []
  for _ in range(repeats):
    ars = per_iteration(lambda: generate(target, prompt, **gen))
    rounds.append([per_iteration(lambda m=m: spec(m)) / ars for m in lengths])
  return tuple(float(x) for x in np.median(np.asarray(rounds), axis=0))


def measure_adaptive_k(target, drafter, k: int, context: int, repeats: int = 1,
                       batch: int = 1) -> AdaptiveK:
  """`sj.AdaptiveK` over its default lengths for k, with their `iteration_costs` measured."""
  lengths = AdaptiveK.default_lengths(k)
  return AdaptiveK(lengths=lengths, iteration_costs=iteration_costs(
      target, drafter, lengths, context, repeats=repeats, batch=batch))


def r_at_length(r: float, k: int, m: float) -> float:
  """r at m drafts on the line through t(1) and t(k + 1) (r measured at k): 1 + (r - 1) m / k."""
  return 1.0 + (r - 1.0) * m / k


def predicted_speedup(alpha: float, k: int, c: float, r: float) -> float:
  """(1 - a^(k+1)) / ((1 - a)(k c + r)): expected tokens per loop over its cost (nan if a is)."""
  if not np.isfinite(alpha):
    return float("nan")
  tokens = (k + 1) if alpha >= 1 else (1 - alpha ** (k + 1)) / (1 - alpha)
  return tokens / (k * c + r)


def predicted_from_mean_length(mean_accepted_length: float, k: int, c: float, r: float) -> float:
  """The prediction with the measured tokens per loop in place of the i.i.d. formula's."""
  return mean_accepted_length / (k * c + r)
