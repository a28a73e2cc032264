"""The methods a speedup table compares: ArS, and SpS with each drafter, named in its rows."""
from typing import Callable, List, Sequence

from specjax.decoding.autoregressive import generate
from specjax.decoding.speculative import speculative_generate

ARS = "ArS"


def method_names(drafters: Sequence[str]) -> List[str]:
  """["ArS", "SpS[<drafter>]", ...] in the drafters' order."""
  return [ARS] + [f"SpS[{d}]" for d in drafters]


def drafter_name(method: str) -> str:
  """The drafter of an "SpS[...]" method name."""
  return method[len("SpS["):-1]


def generation(target, drafter, ids, k: int, **kw) -> Callable[[], object]:
  """A thunk for `perf.timed`: ArS when `drafter` is None, else SpS with `drafter` and k."""
  if drafter is None:
    return lambda: generate(target, ids, **kw)
  return lambda: speculative_generate(target, drafter, ids, k=k, **kw)
