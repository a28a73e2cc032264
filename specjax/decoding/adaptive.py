"""Adaptive K: each row's draft length per iteration, from its running acceptance and the costs.

Per row the loop keeps decayed counts of verified draft positions, accepted
and rejected (`init_counts`, `update_counts`); their ratio, with a weak prior,
estimates the row's per-position acceptance a. Before drafting, each row gets
the length m in `AdaptiveK.lengths` that maximises Leviathan et al.'s expected
tokens per unit cost,

  (1 + a + ... + a^m) / cost(m),

cost(m) an iteration that drafts m tokens, relative to one ArS decode step:
measured for each compiled length (`iteration_costs`, from
`perf.iteration_costs`: the real loop at fixed k = m, with everything an
iteration does), or else the model m c + 1 + r_slope m (c the draft's cost per
token, r_slope the verification's per extra position, both relative to one
target call on one token: `perf.measure_costs`, r_slope = (r - 1) / k; this
model misses the jump from verifying 1 position to 2 and the loop's own
work, so it favours short drafts). The iteration drafts and verifies as many tokens as
the longest live row wants: one of `len(lengths)` compiled variants of the
loop's body, chosen with `lax.switch`, so that shorter drafts are also
cheaper verification calls. Rows that want fewer stop early: a draft token
past a row's m is rejected with q = 0 there, so the token emitted at m comes
from p itself, the bonus token of a draft of length m.

A row at m = 0 drafts nothing: its token comes from p at the last committed
position, as in ArS (the variant m = 0 still runs the drafter for one token, so
that its state stays in step, and verifies the last token alone). Its counts
only decay, so the estimate drifts back to the prior and the row tries again.
Where the prior itself chooses m = 0 (`never_drafts`: the costs, measured at
the call's batch size, say no draft length pays at the prior acceptance), no row
would ever draft, and the engine runs plain ArS instead of the loop.

Exact: m depends only on the row's earlier acceptances, fixed before this
iteration's draft is drawn; speculative sampling is exact for any draft length
decided in advance, so the output's law is the target's, and greedy output is
the target's greedy output.
"""
import dataclasses
from typing import Tuple

import jax.numpy as jnp

from specjax.checks import as_float, as_int


def _sequence(name: str, v) -> tuple:
  if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
    raise ValueError(f"AdaptiveK.{name} must be a tuple, got {v!r}")
  return tuple(v)


@dataclasses.dataclass(frozen=True)
class AdaptiveK:
  """`sj.AdaptiveK(c, r_slope)`: per-row draft lengths in `lengths` (<= the call's k).

  c: the draft's cost per drafted token over a target call's (0 for prompt
  lookup: the loop uses 0 for drafters that call no model); r_slope: the
  verification's extra cost per extra position over a target call on one token;
  lengths: the draft lengths compiled (empty: 0, 1, about k / 2, and k; 0 is an
  ArS step: nothing verified but the last token, worth it where drafting does not pay,
  e.g. at larger batch sizes);
  iteration_costs: per length, a measured iteration's cost over an ArS step
  (`perf.iteration_costs`; needs `lengths`; empty: the c, r_slope model); decay:
  per iteration, how much of a row's acceptance history is kept; prior_alpha
  and prior_weight: the estimate before any verification (a pseudo-count).
  """
  c: float = 0.05
  r_slope: float = 0.08
  lengths: Tuple[int, ...] = ()
  iteration_costs: Tuple[float, ...] = ()
  decay: float = 0.8
  prior_alpha: float = 0.5
  prior_weight: float = 2.0

  def __post_init__(self):
    for name in ("c", "r_slope", "decay", "prior_alpha", "prior_weight"):
      object.__setattr__(self, name, as_float(f"AdaptiveK.{name}", getattr(self, name)))
    if self.c < 0 or self.r_slope < 0:
      raise ValueError(f"AdaptiveK costs must be >= 0, got c={self.c}, r_slope={self.r_slope}")
    if not 0 <= self.decay <= 1 or not 0 <= self.prior_alpha < 1 or self.prior_weight <= 0:
      raise ValueError(f"AdaptiveK needs 0 <= decay <= 1, 0 <= prior_alpha < 1 and "
                       f"prior_weight > 0, got decay={self.decay}, prior_alpha="
                       f"{self.prior_alpha}, prior_weight={self.prior_weight}")
    lengths = tuple(as_int("AdaptiveK.lengths", m, 0, note=" each")
                    for m in _sequence("lengths", self.lengths))
    if len(set(lengths)) != len(lengths):
      raise ValueError(f"AdaptiveK.lengths must be distinct integers >= 0, got {self.lengths!r}")
    costs = tuple(as_float("AdaptiveK.iteration_costs", x, 0, lo_open=True, note=" each")
                  for x in _sequence("iteration_costs", self.iteration_costs))
    if costs and len(costs) != len(lengths):
      raise ValueError(f"AdaptiveK.iteration_costs must be one positive number per length in "
                       f"lengths {lengths}, got {self.iteration_costs!r}")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    object.__setattr__(self, "lengths", tuple(lengths[i] for i in order))
    object.__setattr__(self, "iteration_costs", tuple(float(costs[i]) for i in order)
                       if costs else ())

  @staticmethod
  def default_lengths(k: int) -> Tuple[int, ...]:
    """The lengths compiled when none are given: 0, 1, about k / 2, and k."""
    return tuple(sorted({0, 1, max(1, (k + 1) // 2), k}))

  def for_k(self, k: int, c: float) -> "AdaptiveK":
    """The policy the loop runs for a call with k: lengths filled in and checked, and c."""
    lengths = self.lengths or self.default_lengths(k)
    if max(lengths) != k:
      raise ValueError(f"AdaptiveK.lengths {lengths} must end at k = {k} (the longest draft)")
    return dataclasses.replace(self, lengths=lengths, c=float(c))


def init_counts(batch_size: int):
  """Per row, decayed [accepted, rejected] verified draft positions: none yet."""
  return jnp.zeros((batch_size, 2), jnp.float32)


def update_counts(counts_B2, n_acc_B, rejected_B, live_B, decay: float):
  """After a verification: the old counts decayed, this block's added (live rows only)."""
  block_B2 = jnp.stack([n_acc_B, rejected_B], axis=1).astype(jnp.float32)
  return jnp.where(live_B[:, None], decay * counts_B2 + block_B2, counts_B2)


def choose_lengths(policy: AdaptiveK, counts_B2):
  """Each row's draft length (one of `policy.lengths`) maximising expected tokens per cost."""
  prior = policy.prior_weight
  a_B = (counts_B2[:, 0] + policy.prior_alpha * prior) / (jnp.sum(counts_B2, axis=1) + prior)
  # 1 + a + ... + a^m, without dividing by 1 - a (a may be 1).
  powers_BJ = a_B[:, None] ** jnp.arange(max(policy.lengths) + 1, dtype=jnp.float32)
  tokens_BJ = jnp.cumsum(powers_BJ, axis=1)
  tokens_BM = tokens_BJ[:, jnp.asarray(policy.lengths)]
  if policy.iteration_costs:
    cost_M = jnp.asarray(policy.iteration_costs, jnp.float32)
  else:
    m_M = jnp.asarray(policy.lengths, jnp.float32)
    cost_M = m_M * policy.c + 1.0 + policy.r_slope * m_M
  best_B = jnp.argmax(tokens_BM / cost_M, axis=1)
  return jnp.asarray(policy.lengths, jnp.int32)[best_B]


def never_drafts(policy: AdaptiveK) -> bool:
  """Whether the policy's first choice, before any verification, is m = 0. Such a row's
  counts only decay (nothing is verified), so it chooses 0 again at every iteration and never
  drafts: the whole generation is ArS, and `speculative_generate` runs ArS's own program
  instead of the loop's m = 0 steps (which also run the drafter, and cost more)."""
  return int(choose_lengths(policy, init_counts(1))[0]) == 0


def variant_for(policy: AdaptiveK, m_B, live_B):
  """The index into `policy.lengths` of the shortest length >= every live row's m."""
  longest = jnp.max(jnp.where(live_B, m_B, 0))
  return jnp.sum(jnp.asarray(policy.lengths, jnp.int32) < longest)
