"""Speculative sampling (SpS): draft k, verify k + 1 in one target call, all in one jit.

Notation (Leviathan et al.): p = target, q = draft. Per row and iteration:
accept draft token x_i with probability min(1, p_i(x_i) / q_i(x_i)), left to
right; at the first rejection emit a token from norm(max(0, p_i - q_i)); if
all k are accepted emit a bonus token from p_{k+1}. Each row keeps its own
position: no row waits for the batch minimum, and both caches roll back per
row in O(1). Greedy is the same rule with one-hot p and q (from `warp`).

What "exact" means here. Sampled: the output's law is the target's (to
float32 resolution of the sampler, see `sampling.sample`), and every emitted
token has positive probability under the warped target. Greedy: the output
equals `sj.generate`'s to float rounding, not bit for bit: the verification
scores k + 1 positions in one (k + 1)-row product where ArS uses 1-row
products, so logits can differ in the last bits, and where the top two logits
are that close (a near-tie; seen with bf16 tiny models) the argmax can differ.

Loop invariants, per row, with n = committed tokens (prompt + output):
`seq_BS[:n]` are the committed tokens; the target cache holds the first n - 1
(the newest is fed first in the next verification call); the drafter's
state holds what its `commit(n)` says.
"""
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import struct

from specjax import sharding
from specjax.decoding import inputs
from specjax.decoding.autoregressive import GenerateOutput, Options, finish, prepare
from specjax.decoding.drafters import ModelDrafter, PromptLookup, model_drafter
from specjax.decoding.sampling import Sampling, sample, warp
from specjax.decoding.stats import Stats, init_stats
from specjax.models.kv_cache import KVCache, init_cache
from specjax.models.model import Model
from specjax.models.transformer import forward


@struct.dataclass
class _State:
  seq_BS: jax.Array     # int32[B, S]: committed tokens at their positions (stale after n_B)
  n_B: jax.Array        # int32[B]: committed tokens (prompt + output)
  done_B: jax.Array     # bool[B]: ended rows stop changing
  cache: KVCache        # the target's
  draft_state: Any
  stats: Stats


def accept_and_correct(p_BG1V, q_BGV, draft_BG, key):
  """Modified rejection sampling for a batch of rows, each independently.

  p_BG1V: target probabilities at the k + 1 positions; q_BGV: the draft
  probabilities the k draft tokens were drawn from. Returns (n_accepted_B in
  0..k, next_BV): the distribution of the token emitted after the accepted
  ones (the normalised residual at the first rejection, p_{k+1} after k).
  """
  B, G, V = q_BGV.shape
  p_x_BG = jnp.take_along_axis(p_BG1V[:, :G], draft_BG[..., None], axis=-1)[..., 0]
  q_x_BG = jnp.take_along_axis(q_BGV, draft_BG[..., None], axis=-1)[..., 0]
  u_BG = jax.random.uniform(key, (B, G))
  # u < min(1, p/q)  <=>  u * q < p, since q(x) > 0 for a token drawn from q.
  accept_BG = u_BG * q_x_BG < p_x_BG
  n_acc_B = jnp.sum(jnp.cumprod(accept_BG.astype(jnp.int32), axis=1), axis=1)
  # The distribution of the next token: residual at the first rejection, p_{k+1} after k.
  q_pad_BG1V = jnp.concatenate([q_BGV, jnp.zeros((B, 1, V), q_BGV.dtype)], axis=1)
  p_at_BV = jnp.take_along_axis(p_BG1V, n_acc_B[:, None, None], axis=1)[:, 0]
  q_at_BV = jnp.take_along_axis(q_pad_BG1V, n_acc_B[:, None, None], axis=1)[:, 0]
  resid_BV = jnp.maximum(p_at_BV - q_at_BV, 0.0)
  mass_B1 = jnp.sum(resid_BV, axis=-1, keepdims=True)
  # mass == 0 only when p == q there, where a rejection has probability 0; fall back to p.
  resid_BV = jnp.where(mass_B1 > 0, resid_BV / jnp.where(mass_B1 > 0, mass_B1, 1.0), p_at_BV)
  return n_acc_B, resid_BV


def emit_block(draft_BG, n_acc_B, next_B, room_B, eos_id):
  """The tokens one verification emits per row, and how many.

  The block is the n_acc accepted drafts then the correction (or bonus) token,
  n_acc + 1 tokens, cut to the row's remaining budget `room_B` and after its
  first stop id. Returns (emit_BG1, n_emit_B, hit_B): the block (positions
  past n_emit hold junk, later overwritten), its emitted length, whether a
  stop id ended it.
  """
  B, k = draft_BG.shape
  j_G1 = jnp.arange(k + 1)
  draft_pad_BG1 = jnp.concatenate([draft_BG, jnp.zeros((B, 1), jnp.int32)], axis=1)
  emit_BG1 = jnp.where(j_G1 < n_acc_B[:, None], draft_pad_BG1, next_B[:, None])
  n_emit_B = jnp.minimum(n_acc_B + 1, room_B)
  if eos_id is None:
    return emit_BG1, n_emit_B, jnp.zeros((B,), bool)
  is_eos_BG1 = inputs.is_eos(emit_BG1, eos_id) & (j_G1 < n_emit_B[:, None])
  hit_B = jnp.any(is_eos_BG1, axis=1)
  return emit_BG1, jnp.where(hit_B, jnp.argmax(is_eos_BG1, axis=1) + 1, n_emit_B), hit_B


def _spec_generate(target_params, drafter, prompt_BT, prompt_len_B, key, opts: Options):
  with sharding.active(opts.placement):  # activation/cache constraints while tracing
    return _spec_generate_traced(target_params, drafter, prompt_BT, prompt_len_B, key, opts)


def _spec_generate_traced(target_params, drafter, prompt_BT, prompt_len_B, key, opts):
  B, width = prompt_BT.shape
  S, k, M, cfg = opts.capacity, opts.k, opts.max_new_tokens, opts.config
  seq_BS = sharding.constrain(jnp.zeros((B, S), jnp.int32).at[:, :width].set(prompt_BT),
                              ("batch", None))
  cache = sharding.constrain_cache(init_cache(cfg, B, S))
  _, cache = forward(target_params, cfg, prompt_BT, cache, logits_at_B=jnp.zeros_like(prompt_len_B))
  state = _State(seq_BS=seq_BS, n_B=prompt_len_B, done_B=jnp.zeros((B,), bool),
                 cache=cache.rollback(prompt_len_B - 1),
                 draft_state=drafter.init(prompt_BT, prompt_len_B, S), stats=init_stats(B, k))

  def body(s: _State) -> _State:
    it = s.stats.target_calls  # one target call per iteration
    k_draft, k_acc, k_next = jax.random.split(jax.random.fold_in(key, it), 3)
    draft_BG, q_BGV, draft_state = drafter.propose(s.draft_state, s.seq_BS, s.n_B, k,
                                                   opts.sampling, k_draft)
    last_B = jnp.take_along_axis(s.seq_BS, (s.n_B - 1)[:, None], axis=1)[:, 0]
    verify_BG1 = jnp.concatenate([last_B[:, None], draft_BG], axis=1)
    logits_BG1V, cache = forward(target_params, cfg, verify_BG1, s.cache)  # ONE target call
    p_BG1V = warp(logits_BG1V, opts.sampling)
    n_acc_B, next_BV = accept_and_correct(p_BG1V, q_BGV, draft_BG, k_acc)
    next_B = sample(k_next, next_BV, opts.sampling)

    new_B = s.stats.new_tokens_B
    emit_BG1, n_emit_B, hit_B = emit_block(draft_BG, n_acc_B, next_B, M - new_B, opts.eos_id)
    live_B = ~s.done_B
    n_emit_B = jnp.where(live_B, n_emit_B, 0)

    # Slots past n + n_emit are stale, so the whole block is written.
    write = lambda row_S, blk, at: jax.lax.dynamic_update_slice(row_S, blk, (at,))
    seq_BS = jax.vmap(write)(s.seq_BS, emit_BG1, s.n_B)
    n_B = s.n_B + n_emit_B
    new_B = new_B + n_emit_B
    done_B = s.done_B | (live_B & hit_B) | (new_B >= M)
    stats = s.stats.replace(
        target_calls=s.stats.target_calls + 1,
        draft_calls=s.stats.draft_calls + drafter.calls_per_proposal(k),
        accepted_histogram_BG=s.stats.accepted_histogram_BG +
        jax.nn.one_hot(n_acc_B, k + 1, dtype=jnp.int32) * live_B[:, None],
        new_tokens_B=new_B)
    return s.replace(seq_BS=seq_BS, n_B=n_B, done_B=done_B,
                     cache=cache.rollback(n_B - 1),  # O(1) per-row rollback
                     draft_state=drafter.commit(draft_state, n_B), stats=stats)

  state = jax.lax.while_loop(lambda s: ~jnp.all(s.done_B), body, state)
  new_B = state.stats.new_tokens_B
  cols_BM = prompt_len_B[:, None] + jnp.arange(M)
  tokens_BM = jnp.take_along_axis(state.seq_BS, jnp.minimum(cols_BM, S - 1), axis=1)
  tokens_BM = jnp.where(jnp.arange(M) < new_B[:, None], tokens_BM, 0)
  out = jax.tree.map(sharding.replicate, (tokens_BM, new_B, state.stats))
  return out + (state.cache, state.draft_state)


_spec_generate_jit = jax.jit(_spec_generate, static_argnames="opts")


def _as_drafter(draft, target: Model, placement=None):
  if isinstance(draft, Model):
    if draft.config.vocab_size != target.config.vocab_size:
      raise ValueError(f"draft and target vocab sizes differ: draft {draft.name!r} has "
                       f"{draft.config.vocab_size}, target {target.name!r} has "
                       f"{target.config.vocab_size}")
    drafter = model_drafter(draft)
    if placement is not None:
      drafter = drafter.replace(params=sharding.place_params(drafter.params, draft.config,
                                                             placement), placement=placement)
    return drafter, draft.config.max_len
  if isinstance(draft, PromptLookup):
    return draft.replace(vocab_size=target.config.vocab_size), None
  if isinstance(draft, ModelDrafter):
    return _as_drafter(Model(config=draft.config, params=draft.params, name=draft.name), target,
                       placement)
  raise ValueError(f"draft must be a specjax Model (e.g. sj.load(...), sj.self_draft(...)) or "
                   f"a drafter such as sj.prompt_lookup(...), got {type(draft).__name__}")


def speculative_generate(target: Model, draft, prompts, k: int = 4, max_new_tokens: int = 32,
                         sampling: Sampling = Sampling(temperature=0.0),
                         key: Optional[jax.Array] = None, eos_id=inputs.MODEL_EOS,
                         return_state: bool = False, mesh=None, rules=None,
                         draft_rules=None, pad_multiple: int = 16) -> GenerateOutput:
  """`sj.speculative_generate(target, draft, prompts, k, max_new_tokens, sampling, key)`.

  `draft`: a Model sharing the target's vocab (a trained draft, `sj.self_draft`)
  or a drafter (`sj.prompt_lookup`). Output, `eos_id` and `pad_multiple` as
  `sj.generate`, with `stats`
  holding target/draft calls, the per-row accepted histogram over 0..k,
  acceptance rate and mean accepted length (bonus token included).
  `mesh` shards both models (target by `rules`, draft by `draft_rules`,
  default: the target's; `sharding.REPLICATED_RULES` keeps a small draft whole
  on every device) and splits the batch over 'data'.
  """
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"k (draft tokens per iteration) must be an integer >= 1, got {k!r}")
  draft_placement = sharding.make_placement(mesh, draft_rules or rules)
  drafter, draft_max_len = _as_drafter(draft, target, draft_placement)
  params, prompt_BT, prompt_len_B, key, opts = prepare(
      target, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules, k=k,
      max_len=min(target.config.max_len, draft_max_len or target.config.max_len),
      pad_multiple=pad_multiple)
  tokens, lengths, stats, cache, draft_state = _spec_generate_jit(
      params, drafter, prompt_BT, prompt_len_B, key, opts=opts)
  out = finish(target, tokens, lengths, stats)
  return (out, cache, draft_state) if return_state else out
