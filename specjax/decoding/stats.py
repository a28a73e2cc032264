"""Decoding statistics: arrays carried in the loop state, summarised on the host."""
import jax
import jax.numpy as jnp
import numpy as np
from typing import Optional

from flax import struct


@struct.dataclass
class Stats:
  """Counts from one generation call. All fields are arrays from the jitted loop.

  A *block* is what one verification call gives one live row: n accepted
  draft tokens (0..k) and then one correction (after a rejection) or bonus
  (after k acceptances) token, n + 1 tokens. A block can be *cut*: by the
  token budget (only the first max_new_tokens - emitted tokens are kept) or by
  a stop id (tokens after it are dropped). Figures built on the histogram
  count blocks before the cut, as vLLM does; `new_tokens` counts after it.
  """
  # Loop iterations: one batched target call each, whether or not every row is live.
  # The prefill is not counted (ArS: it gives each row's first token; SpS: it emits none).
  target_calls: jax.Array         # int32[]
  # Draft forward calls (k per iteration for a model drafter, 0 for prompt lookup).
  draft_calls: jax.Array          # int32[]
  # Per row, the live blocks in which 0..G drafts were accepted, before any cut
  # (G = k; autoregressive sampling: G = 0, one count per decode call while live).
  accepted_histogram_BG: jax.Array  # int32[B, G + 1]
  # Per row, tokens emitted after the cuts (a stop id included): out.lengths.
  new_tokens_B: jax.Array         # int32[B]
  # Per row, over live blocks: draft tokens put to verification (k each at a fixed k; adaptive
  # K: the row's length), and blocks that ended in a rejection (fewer accepted than drafted).
  # None in stats summed from records that kept only the histogram (fixed k is assumed).
  drafted_B: Optional[jax.Array] = None   # int32[B]
  rejected_B: Optional[jax.Array] = None  # int32[B]

  @property
  def k(self) -> int:
    return self.accepted_histogram_BG.shape[-1] - 1

  @property
  def new_tokens(self) -> int:
    return int(np.sum(self.new_tokens_B))

  @property
  def accepted_histogram(self) -> np.ndarray:
    """Summed over rows: int[k + 1]."""
    return np.asarray(self.accepted_histogram_BG).sum(0)

  @property
  def accepted(self) -> int:
    """Accepted draft tokens over all live blocks, before cuts."""
    return int((self.accepted_histogram * np.arange(self.k + 1)).sum())

  @property
  def drafted(self) -> int:
    """Draft tokens put to verification over all live blocks (k per block at a fixed k)."""
    if self.drafted_B is None:
      return int(self.accepted_histogram.sum()) * self.k
    return int(np.sum(self.drafted_B))

  @property
  def rejected(self) -> int:
    """Blocks that ended in a rejection (at a fixed k: those with fewer than k accepted)."""
    if self.rejected_B is None:
      return int(self.accepted_histogram[:-1].sum()) if self.k else 0
    return int(np.sum(self.rejected_B))

  @property
  def mean_draft_length(self) -> float:
    """Drafted tokens per live block (k at a fixed k; less with adaptive K; nan if none)."""
    blocks = int(self.accepted_histogram.sum())
    return self.drafted / blocks if blocks else float("nan")

  @property
  def acceptance_rate(self) -> float:
    """Accepted / drafted tokens over all live blocks, before cuts (nan if none).

    Every live block counts all the tokens it drafted, including the ones never
    verified after a rejection; see `alpha` for the per-position rate.
    """
    return self.accepted / self.drafted if self.drafted else float("nan")

  @property
  def alpha(self) -> float:
    """Per-position acceptance: accepted / (accepted + rejected) verified draft tokens.

    Leviathan et al.'s a (the expected min(p, q) mass per position), estimated
    from the counts: every block that accepted fewer drafts than it drafted
    ended in exactly one rejection; drafts after it were never verified. It is the
    maximum-likelihood a when acceptances are i.i.d., and the a that the
    speedup formula (1 - a^(k+1)) / ((1 - a)(k c + r)) takes.
    """
    accepted, rejected = self.accepted, self.rejected
    return accepted / (accepted + rejected) if accepted + rejected else float("nan")

  @property
  def mean_accepted_length(self) -> float:
    """Accepted drafts + 1 per live block (vLLM's mean acceptance length; nan if none).

    The + 1 is the correction or bonus token. Counted before cuts: the last
    block of a row cut by the budget or a stop id still counts in full, so
    this can exceed new_tokens / blocks.
    """
    h = self.accepted_histogram
    return float((h * (np.arange(self.k + 1) + 1)).sum() / h.sum()) if h.sum() else float("nan")

  @classmethod
  def from_histogram(cls, histogram_G, drafted: Optional[int] = None,
                     rejected: Optional[int] = None) -> "Stats":
    """Stats of summed records: acceptance figures only (the calls and tokens count 0).

    `drafted` and `rejected`: the records' sums where they kept them (adaptive K
    needs them); None: a fixed k is assumed.
    """
    z = np.int32(0)
    as_B = lambda x: None if x is None else np.asarray([x], np.int64)
    return cls(target_calls=z, draft_calls=z, accepted_histogram_BG=np.asarray(histogram_G)[None],
               new_tokens_B=np.zeros((1,), np.int32), drafted_B=as_B(drafted),
               rejected_B=as_B(rejected))

  def summary(self) -> dict:
    return dict(target_calls=int(self.target_calls), draft_calls=int(self.draft_calls),
                new_tokens=self.new_tokens, accepted_histogram=self.accepted_histogram.tolist(),
                drafted=self.drafted, rejected=self.rejected,
                acceptance_rate=self.acceptance_rate, alpha=self.alpha,
                mean_accepted_length=self.mean_accepted_length)


def init_stats(batch_size: int, k: int) -> Stats:
  z = jnp.zeros((), jnp.int32)
  return Stats(target_calls=z, draft_calls=z,
               accepted_histogram_BG=jnp.zeros((batch_size, k + 1), jnp.int32),
               new_tokens_B=jnp.zeros((batch_size,), jnp.int32),
               drafted_B=jnp.zeros((batch_size,), jnp.int32),
               rejected_B=jnp.zeros((batch_size,), jnp.int32))
