"""Where a generation's time goes: prefill, the target's calls, the drafter's, the loop's rest.

The prefill and the loop are timed apart (`timing.timed_generation`: the two
programs of every sampler, waited for one after the other). Inside the loop,
the target's calls and the drafter's are their counts times their measured
per-call times at the same shapes (`costs.measure_costs`: t(1), r, c), and the
rest of the loop (warping, acceptance, sampling, cache bookkeeping, a lookup
drafter's search) is what the loop's time leaves. The host's share is the
call's time outside both programs (checks, transfers, decoding text).

Decode-only figures leave the prefill out (the paper's regime: on its TPUs the
prefill was a few percent), and the loop's efficiency compares the measured
decode-only speedup with the one the costs predict from the measured mean
accepted length.
"""
from typing import Optional, Sequence

from specjax.perf.costs import predicted_from_mean_length


def account(records: Sequence[dict], k: int, cost: Optional[dict], sps: bool) -> dict:
  """Sums over `records` (Table 1 records: seconds, prefill_seconds, loop_seconds,
  prefill_tokens, lengths, target_calls): the parts in seconds and decode-only ms/token.

  `cost`: {t_target_1_ms, c, r} as `table1` measures them (None: no split of the
  loop). ArS's loop calls the target on one token (r = 1) and drafts nothing.
  Returns {} for records from before the prefill was timed apart.
  """
  if not records or any("loop_seconds" not in x for x in records):
    return {}
  total = sum(x["seconds"] for x in records)
  prefill = sum(x["prefill_seconds"] for x in records)
  loop = sum(x["loop_seconds"] for x in records)
  loop_tokens = sum(sum(x["lengths"]) - x["prefill_tokens"] for x in records)
  out = dict(prefill_s=prefill, loop_s=loop, host_s=total - prefill - loop,
             compile_s=sum(x.get("compile_seconds", 0.0) for x in records),
             decode_ms_per_token=1e3 * loop / loop_tokens if loop_tokens else float("nan"))
  if cost:
    calls = sum(x["target_calls"] for x in records)
    t1 = cost["t_target_1_ms"] / 1e3
    target = calls * t1 * (cost["r"] if sps else 1.0)
    draft = calls * k * cost["c"] * t1 if sps else 0.0
    out.update(target_s=target, draft_s=draft, loop_rest_s=loop - target - draft)
  return out


def loop_efficiency(decode_speedup: float, mean_accepted_length: float, k: int, c: float,
                    r: float) -> float:
  """Measured decode-only speedup / the speedup predicted from the measured mean accepted
  length, c and r: 1.0 when the loop costs nothing beyond its calls."""
  return decode_speedup / predicted_from_mean_length(mean_accepted_length, k, c, r)
