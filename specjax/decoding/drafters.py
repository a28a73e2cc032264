"""Drafters: anything that proposes k tokens with the distributions q they came from.

Every drafter implements `Drafter` (below): a flax struct dataclass (a pytree:
its params are leaves, its static options are part of the tree structure) with
pure functions

  init(prompt_BT, prompt_len_B, capacity) -> state
  propose(state, seq_BS, n_B, k, sampling, key) -> (tokens_BG, q_BGV, state)
  commit(state, n_B) -> state
  calls_per_proposal(k) -> int

and `build_drafter` names them all from one string ("lookup:3", "self:8",
"smollm2-135m-draft", a path).

`seq_BS` holds each row's committed tokens (prompt + output so far) at their
positions, `n_B` how many there are. `q_BGV` is exactly the distribution each
token was drawn from (float32, warped by `sampling`), so the accept ratio
p/q in the speculative loop uses the distribution the draft sampled.

Draft-model cache invariant: between iterations the draft cache holds the
first `max(n - 2, 0)` committed tokens. `propose` first feeds the last two
committed tokens as one 2-token call (re-writing slot n-2, which is either
already there with the same value or, after a fully accepted block, the last
draft token the draft never saw), so no extra catch-up call is needed.
"""
from typing import Any, Optional, Protocol, Tuple, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from specjax import sharding
from specjax.checks import as_int
from specjax.decoding.sampling import SamplingLike, sample, warp
from specjax.models.config import ModelConfig
from specjax.models.kv_cache import KVCache, init_cache
from specjax.models.registry import load
from specjax.models.model import Model
from specjax.models.transformer import forward


@runtime_checkable
class Drafter(Protocol):
  """What the speculative loop asks of a drafter; all methods are traced inside its jit.

  - `init(prompt_BT, prompt_len_B, capacity)`: the drafter's state after the
    (padded) prompts, e.g. a prefilled KV cache;
  - `propose(state, seq_BS, n_B, k, sampling, key)`: k tokens per row and the
    float32 q_BGV each was drawn from (warped by `sampling`, positive at the
    drawn token), given the committed tokens `seq_BS[:, :n_B]`;
  - `commit(state, n_B)`: after verification, each row keeps its first n_B
    committed tokens (O(1) per row: set lengths, copy nothing);
  - `calls_per_proposal(k)`: model calls per proposal, for `Stats.draft_calls`;
  - `feature_layers`: the target layers whose residual stream the drafter reads
    (() for none). When it names some, the loop asks the target's prefill and
    verification calls for them and passes them on as `features=`
    (`Features`) to `init` (the prompt's) and to `commit` (the verified
    positions': of those, the first n_B - start_B hold committed tokens, the
    rest rejected drafts, to be overwritten when those positions are verified).
  """
  name: str
  feature_layers: Tuple[int, ...]

  def init(self, prompt_BT, prompt_len_B, capacity, features=None) -> Any: ...

  def propose(self, state, seq_BS, n_B, k: int, sampling: SamplingLike, key): ...

  def commit(self, state, n_B, features=None) -> Any: ...

  def calls_per_proposal(self, k: int) -> int: ...


@struct.dataclass
class Features:
  """The target's residual stream at layers `feature_layers`, for T positions per row.

  `hidden_BTLD[b, t]` belongs to position `start_B[b] + t` of row b's sequence
  (prefill: start 0, padding after the prompt included; verification: start
  n_B - 1, the last committed token, then the k drafts).
  """
  hidden_BTLD: jax.Array
  start_B: jax.Array


@struct.dataclass
class ModelDrafter:
  """A draft language model sharing the target's vocabulary."""
  params: Any
  config: ModelConfig = struct.field(pytree_node=False)
  name: str = struct.field(pytree_node=False, default="draft")
  # Where the draft lives (its own rules: a small draft is often best replicated).
  placement: Optional[sharding.Placement] = struct.field(pytree_node=False, default=None)

  feature_layers = ()  # reads no target features

  @property
  def vocab_size(self) -> int:
    return self.config.vocab_size

  def init(self, prompt_BT, prompt_len_B, capacity, features=None) -> KVCache:
    with sharding.active(self.placement):
      cache = sharding.constrain_cache(init_cache(self.config, prompt_BT.shape[0], capacity))
      _, cache = forward(self.params, self.config, prompt_BT, cache,
                         logits_at_B=jnp.zeros_like(prompt_len_B), empty_cache=True)
    return self.commit(cache, prompt_len_B)

  def commit(self, cache: KVCache, n_B, features=None) -> KVCache:
    return cache.rollback(jnp.maximum(n_B - 2, 0))

  def propose(self, cache: KVCache, seq_BS, n_B, k: int, sampling: SamplingLike, key):
    with sharding.active(self.placement):
      return self._propose(cache, seq_BS, n_B, k, sampling, key)

  def _propose(self, cache: KVCache, seq_BS, n_B, k: int, sampling: SamplingLike, key):
    B = seq_BS.shape[0]
    start_B = jnp.maximum(n_B - 2, 0)  # == cache.length_B
    pair_B2 = jnp.take_along_axis(seq_BS, start_B[:, None] + jnp.arange(2), axis=1)
    logits_B2V, cache = forward(self.params, self.config, pair_B2, cache.rollback(start_B))
    # With a 1-token history the pair is [x0, junk]: the logits we need sit at index 0 and
    # the junk slot is stale (length is set to n below) and overwritten by the next call.
    logits_BV = jnp.take_along_axis(logits_B2V, (n_B - 1 - start_B)[:, None, None], axis=1)[:, 0]
    cache = cache.rollback(n_B)

    def step(carry, i):
      cache, logits_BV = carry
      q_BV = warp(logits_BV, sampling)
      tok_B = sample(jax.random.fold_in(key, i), q_BV, sampling)
      logits_B1V, cache = forward(self.params, self.config, tok_B[:, None], cache)
      return (cache, logits_B1V[:, 0]), (tok_B, q_BV)

    (cache, last_logits_BV), (toks_GB, q_GBV) = jax.lax.scan(
        step, (cache, logits_BV), jnp.arange(k - 1))
    q_BV = warp(last_logits_BV, sampling)  # the k-th token needs no forward call of its own
    tok_B = sample(jax.random.fold_in(key, k - 1), q_BV, sampling)
    tokens_BG = jnp.concatenate([toks_GB.T.reshape(B, k - 1), tok_B[:, None]], axis=1)
    q_BGV = jnp.concatenate([q_GBV.transpose(1, 0, 2), q_BV[:, None]], axis=1)
    return tokens_BG, q_BGV, cache

  def calls_per_proposal(self, k: int) -> int:
    return k  # one 2-token call, then k - 1 one-token calls


def model_drafter(model: Model) -> ModelDrafter:
  return ModelDrafter(params=model.params, config=model.config, name=model.name)


def self_draft(target: Model, num_layers: int) -> Model:
  """`sj.self_draft(target, num_layers=N)`: the target's first N layers, final norm and head.

  No training and no copy: the draft's params are the target's own arrays.
  """
  if not isinstance(target, Model):
    raise ValueError(f"self_draft's target must be a specjax Model, got {type(target).__name__}")
  L = target.config.num_layers
  num_layers = as_int("self_draft num_layers", num_layers, 1, L, note=" (the target's layers)")
  keep = {f"layers_{i}" for i in range(num_layers)}
  params = {n: v for n, v in target.params.items() if not n.startswith("layers_") or n in keep}
  return target.replace(config=target.config.replace(num_layers=num_layers), params=params,
                        name=f"{target.name}[:{num_layers} layers]")


@struct.dataclass
class PromptLookup:
  """`sj.prompt_lookup(max_ngram=3)`: n-gram drafting from the prompt and the text so far.

  Finds the most recent earlier occurrence of the last n committed tokens
  (n from max_ngram down to min_ngram) and proposes the k tokens that followed
  it. Training-free; q is one-hot, so the accept rule stays exact. Without a
  match it proposes the last token repeated (accepted only if the target
  agrees).
  """
  vocab_size: int = struct.field(pytree_node=False)
  max_ngram: int = struct.field(pytree_node=False, default=3)
  min_ngram: int = struct.field(pytree_node=False, default=1)
  name: str = struct.field(pytree_node=False, default="prompt_lookup")
  feature_layers = ()  # reads no target features

  def init(self, prompt_BT, prompt_len_B, capacity, features=None):
    return ()

  def commit(self, state, n_B, features=None):
    return state

  def calls_per_proposal(self, k: int) -> int:
    return 0

  def propose(self, state, seq_BS, n_B, k: int, sampling: SamplingLike, key):
    S = seq_BS.shape[1]
    pos_S = jnp.arange(S)

    def one_row(seq_S, n):
      # len_S[j]: how many tokens ending at an earlier position j (a continuation exists:
      # j + 1 <= n - 1) equal the last ones committed, up to max_ngram. A rolled loop:
      # the compiled program does not grow with max_ngram.
      def extend(i, carry):
        alive_S, len_S = carry
        alive_S &= (pos_S >= i) & (jnp.roll(seq_S, i) == seq_S[jnp.maximum(n - 1 - i, 0)])
        return alive_S, len_S + alive_S
      _, len_S = jax.lax.fori_loop(0, min(self.max_ngram, S), extend,
                                   (pos_S < n - 1, jnp.zeros((S,), jnp.int32)))
      # The longest match of at least min_ngram tokens, the most recent among equals.
      m = jnp.max(len_S)
      found = m >= self.min_ngram
      best_end = jnp.max(jnp.where(len_S == m, pos_S, -1))
      idx_G = jnp.minimum(best_end + 1 + jnp.arange(k), n - 1)
      return jnp.where(found, seq_S[idx_G], seq_S[n - 1])

    tokens_BG = jax.vmap(one_row)(seq_BS, n_B).astype(jnp.int32)
    return tokens_BG, jax.nn.one_hot(tokens_BG, self.vocab_size, dtype=jnp.float32), state


def build_drafter(name, target: Model, dtype: Optional[str] = None):
  """One way to name a drafter, for the API, configs and flags.

  `name`: "lookup:N" (prompt lookup, max n-gram N; "lookup" = 3), "self:N" (the
  target's first N layers), a registered model name or a path (`sj.load`, in
  `dtype`, default the target's), or a drafter / Model, returned as it is.
  """
  if not isinstance(name, str):
    return name
  kind, _, arg = name.partition(":")
  if kind in ("lookup", "self"):
    try:
      n = int(arg) if arg or kind == "self" else 3
    except ValueError:
      raise ValueError(f"drafter {name!r}: {kind}:N needs an integer N, got {arg!r}") from None
    return prompt_lookup(max_ngram=n) if kind == "lookup" else self_draft(target, num_layers=n)
  try:
    return load(name, dtype or target.config.dtype)
  except ValueError as e:
    raise ValueError(f"draft must be 'lookup:N', 'self:N', a model name or a path; {e}") from None


def prompt_lookup(max_ngram: int = 3, min_ngram: int = 1, vocab_size: Optional[int] = None):
  """`sj.prompt_lookup(max_ngram=3)`; the vocab size is taken from the target when None.

  Any max_ngram compiles to the same program (the search is a rolled loop of
  min(max_ngram, cache slots) steps, each O(slots) per row).
  """
  max_ngram = as_int("prompt_lookup max_ngram", max_ngram, 1,
                     note=" (1 <= min_ngram <= max_ngram)")
  min_ngram = as_int("prompt_lookup min_ngram", min_ngram, 1, max_ngram,
                     note=" (<= max_ngram)")
  if vocab_size is not None:
    vocab_size = as_int("prompt_lookup vocab_size", vocab_size, 1)
  return PromptLookup(vocab_size=vocab_size or 0, max_ngram=max_ngram, min_ngram=min_ngram)
