"""The methods a speedup table compares: ArS, and SpS with each drafter, named in its rows.

"SpS[<drafter>]" drafts k tokens every iteration; "SpS[<drafter>] adaptive" up to k,
per row (`sj.AdaptiveK`), with the policy built from the drafter's measured c and r.
"""
from typing import Callable, List, Optional, Sequence

from specjax.decoding.adaptive import AdaptiveK
from specjax.decoding.autoregressive import generate
from specjax.decoding.speculative import speculative_generate

ARS = "ArS"
ADAPTIVE = " adaptive"


def method_names(drafters: Sequence[str], adaptive: bool = False) -> List[str]:
  """["ArS", "SpS[<drafter>]", ...] in the drafters' order; with `adaptive`, each drafter's
  "SpS[<drafter>] adaptive" after its fixed-k row."""
  names = [ARS]
  for d in drafters:
    names += [f"SpS[{d}]"] + ([f"SpS[{d}]{ADAPTIVE}"] if adaptive else [])
  return names


def drafter_name(method: str) -> str:
  """The drafter of an "SpS[...]" method name."""
  return method[len("SpS["):method.rindex("]")]


def is_adaptive(method: str) -> bool:
  return method.endswith(ADAPTIVE)


def adaptive_policy(k: int, cost: Optional[dict]) -> AdaptiveK:
  """The policy for a drafter whose costs were measured: its iterations' costs per draft
  length where measured (`perf.iteration_costs`: "lengths", "iteration_costs"), else c and r
  (`perf.measure_costs` at this k; the verification's cost per extra position (r - 1) / k)."""
  if not cost:
    raise ValueError("adaptive K needs the drafter's measured c and r (none were measured)")
  if cost.get("iteration_costs"):
    return AdaptiveK(lengths=tuple(cost["lengths"]), iteration_costs=tuple(cost["iteration_costs"]))
  return AdaptiveK(c=max(cost["c"], 0.0), r_slope=max(cost["r"] - 1.0, 0.0) / k)


def generation(target, drafter, ids, k: int, adaptive_k: Optional[AdaptiveK] = None,
               **kw) -> Callable[[], object]:
  """A thunk for `perf.timed`: ArS when `drafter` is None, else SpS with `drafter` and k
  (adaptive up to k with `adaptive_k`)."""
  if drafter is None:
    return lambda: generate(target, ids, **kw)
  return lambda: speculative_generate(target, drafter, ids, k=k, adaptive_k=adaptive_k, **kw)
