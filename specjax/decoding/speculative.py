"""Speculative sampling (SpS): draft k, verify k + 1 in one target call, the loop in one jit.

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
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from specjax import sharding
from specjax.decoding import adaptive, autoregressive, engine, inputs
from specjax.decoding.adaptive import AdaptiveK
from specjax.decoding.engine import GenerateOutput, Options
from specjax.decoding.drafters import Drafter, Features, ModelDrafter, PromptLookup, build_drafter
from specjax.decoding.feature_drafter import FeatureDrafter, drafter_of
from specjax.decoding.sampling import Sampling, sample, warp
from specjax.models.kv_cache import init_cache
from specjax.models.model import Model, param_logical_axes
from specjax.models.transformer import check_hidden_layers, forward


def accept_and_correct(p_BG1V, q_BGV, draft_BG, key, length_B=None):
  """Modified rejection sampling for a batch of rows, each independently.

  p_BG1V: target probabilities at the k + 1 positions; q_BGV: the draft
  probabilities the k draft tokens were drawn from. `length_B` (adaptive K):
  each row's draft length m <= k; drafts past it are rejected with q = 0, so
  the token after m accepted ones comes from p_{m+1} (a bonus token). Returns
  (n_accepted_B in 0..k, next_BV): the distribution of the token emitted after
  the accepted ones (the normalised residual at the first rejection, p_{k+1}
  after k).
  """
  B, G, V = q_BGV.shape
  p_x_BG = jnp.take_along_axis(p_BG1V[:, :G], draft_BG[..., None], axis=-1)[..., 0]
  q_x_BG = jnp.take_along_axis(q_BGV, draft_BG[..., None], axis=-1)[..., 0]
  u_BG = jax.random.uniform(key, (B, G))
  # u < min(1, p/q)  <=>  u * q < p, since q(x) > 0 for a token drawn from q.
  accept_BG = u_BG * q_x_BG < p_x_BG
  if length_B is not None:
    in_draft_BG = jnp.arange(G) < length_B[:, None]
    accept_BG &= in_draft_BG
    q_BGV = jnp.where(in_draft_BG[..., None], q_BGV, 0.0)
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


def _prefill(target_params, drafter, prompt_BT, prompt_len_B, knobs: engine.Knobs,
             opts: Options) -> engine.LoopState:
  """Both caches over the prompts (a drafter that reads features gets the prompt's)."""
  with sharding.active(opts.placement):  # activation/cache constraints while tracing
    cfg = opts.config
    cache = sharding.constrain_cache(init_cache(cfg, prompt_BT.shape[0], opts.capacity))
    layers = tuple(drafter.feature_layers)
    if layers:
      _, cache, hidden_BTLD = forward(target_params, cfg, prompt_BT, cache, hidden_layers=layers,
                                      logits_at_B=jnp.zeros_like(prompt_len_B), empty_cache=True)
      draft_state = drafter.init(prompt_BT, prompt_len_B, opts.capacity,
                                 features=Features(hidden_BTLD, jnp.zeros_like(prompt_len_B)))
    else:
      _, cache = forward(target_params, cfg, prompt_BT, cache,
                         logits_at_B=jnp.zeros_like(prompt_len_B), empty_cache=True)
      draft_state = drafter.init(prompt_BT, prompt_len_B, opts.capacity)
    return engine.start(prompt_BT, prompt_len_B, cache, draft_state, knobs, opts)


def _loop(target_params, drafter, state: engine.LoopState, prompt_len_B, key, opts: Options):
  with sharding.active(opts.placement):
    return _loop_traced(target_params, drafter, state, prompt_len_B, key, opts)


def _draft_and_verify(target_params, drafter, s: engine.LoopState, k: int, key,
                      opts: Options):
  """The drafter's k tokens and ONE target call on them: (draft_BG, q_BGV, p_BG1V, cache,
  draft_state, the features the drafter reads (or None)).

  k = 0 (adaptive K's ArS step): the drafter still proposes one token, which keeps its
  state in step, and the call verifies the last committed token alone.
  """
  draft_BG, q_BGV, draft_state = drafter.propose(s.draft_state, s.seq_BS, s.n_B, max(k, 1),
                                                 s.knobs.sampling, key)
  last_B = jnp.take_along_axis(s.seq_BS, (s.n_B - 1)[:, None], axis=1)[:, 0]
  verify_BG1 = jnp.concatenate([last_B[:, None], draft_BG[:, :k]], axis=1)
  layers = tuple(drafter.feature_layers)
  if layers:
    logits_BG1V, cache, hidden_BG1LD = forward(target_params, opts.config, verify_BG1, s.cache,
                                               hidden_layers=layers)
  else:
    (logits_BG1V, cache), hidden_BG1LD = forward(target_params, opts.config, verify_BG1,
                                                 s.cache), None
  return (draft_BG, q_BGV, warp(logits_BG1V, s.knobs.sampling), cache, draft_state,
          hidden_BG1LD)


def _pad_to(x, size: int, axis: int = 1):
  """x with zeros appended along `axis` up to `size`."""
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, size - x.shape[axis])
  return jnp.pad(x, pad)


def _adaptive_draft_and_verify(target_params, drafter, s: engine.LoopState, key, opts: Options):
  """Adaptive K: each row's length (`adaptive.choose_lengths`), then the variant that drafts
  and verifies as many as the longest live row wants (`lax.switch`), padded to k.

  Returns `_draft_and_verify`'s outputs, the rows' lengths and the variant's index.
  """
  policy, k = opts.adaptive, opts.k
  length_B = adaptive.choose_lengths(policy, s.counts_B2)
  variant = adaptive.variant_for(policy, length_B, ~s.done_B)

  def branch(m):
    def run():
      draft_BG, q_BGV, p_BG1V, cache, draft_state, hidden = _draft_and_verify(
          target_params, drafter, s, m, key, opts)
      return (_pad_to(draft_BG, k), _pad_to(q_BGV, k), _pad_to(p_BG1V, k + 1), cache,
              draft_state, None if hidden is None else _pad_to(hidden, k + 1))
    return run

  outs = jax.lax.switch(variant, [branch(m) for m in policy.lengths])
  lengths_M = jnp.asarray(policy.lengths, jnp.int32)
  return outs + (jnp.minimum(length_B, lengths_M[variant]), variant)


def _loop_traced(target_params, drafter, state, prompt_len_B, key, opts: Options):
  k, policy = opts.k, opts.adaptive

  def body(s: engine.LoopState) -> engine.LoopState:
    it = s.stats.target_calls  # one target call per iteration
    k_draft, k_acc, k_next = jax.random.split(jax.random.fold_in(key, it), 3)
    if policy is None:
      draft_BG, q_BGV, p_BG1V, cache, draft_state, hidden = _draft_and_verify(
          target_params, drafter, s, k, k_draft, opts)
      length_B, draft_calls = None, drafter.calls_per_proposal(k)
    else:
      draft_BG, q_BGV, p_BG1V, cache, draft_state, hidden, length_B, variant = \
          _adaptive_draft_and_verify(target_params, drafter, s, k_draft, opts)
      draft_calls = jnp.asarray([drafter.calls_per_proposal(max(m, 1))
                                 for m in policy.lengths])[variant]
    # The fixed-k call keeps the rule's 4-argument form (tests swap in biased rules).
    n_acc_B, next_BV = accept_and_correct(p_BG1V, q_BGV, draft_BG, k_acc,
                                          *(() if length_B is None else (length_B,)))
    next_B = sample(k_next, next_BV, s.knobs.sampling)
    live_B, start_B = ~s.done_B, s.n_B - 1  # the verification's first position
    s = engine.advance(s, draft_BG, n_acc_B, next_B, cache, draft_state, opts,
                       draft_calls=draft_calls, drafted_B=length_B)
    if policy is not None:
      s = s.replace(counts_B2=adaptive.update_counts(s.counts_B2, n_acc_B, n_acc_B < length_B,
                                                     live_B, policy.decay))
    if hidden is None:
      return s.replace(draft_state=drafter.commit(s.draft_state, s.n_B))
    # m = 0 drafted one token too: its features are those of [last, junk] (the junk
    # position is past the committed ones, overwritten when it is verified).
    commit = lambda m: lambda: drafter.commit(s.draft_state, s.n_B,
                                              features=Features(hidden[:, :max(m, 1) + 1],
                                                                start_B))
    if policy is None:
      return s.replace(draft_state=commit(k)())
    # The features of the variant's m + 1 verified positions (a shorter rewrite call).
    return s.replace(draft_state=jax.lax.switch(variant, [commit(m) for m in policy.lengths]))

  out, state = engine.run(state, body, prompt_len_B, opts)
  return out + (state.cache, state.draft_state)


_prefill_jit = jax.jit(_prefill, static_argnames="opts")
_loop_jit = jax.jit(_loop, static_argnames="opts", donate_argnums=2)


def _check_features(draft: FeatureDrafter, target: Model) -> None:
  """A feature draft reads layers the target has, of the target's width."""
  check_hidden_layers(target.config, draft.feature_layers)
  if draft.config.d_model != target.config.d_model:
    raise ValueError(f"feature draft {draft.name!r} has width {draft.config.d_model}, the target "
                     f"{target.name!r} {target.config.d_model}: it reads the target's features")


def _as_drafter(draft, target: Model, placement=None):
  """(the drafter the loop runs, the longest sequence it allows or None)."""
  draft = build_drafter(draft, target)
  if isinstance(draft, Model):
    engine.check_model(draft, "draft")
    draft = drafter_of(draft)
  if isinstance(draft, (ModelDrafter, FeatureDrafter)):
    if draft.config.vocab_size != target.config.vocab_size:
      raise ValueError(f"draft and target vocab sizes differ: draft {draft.name!r} has "
                       f"{draft.config.vocab_size}, target {target.name!r} has "
                       f"{target.config.vocab_size}")
    if isinstance(draft, FeatureDrafter):
      _check_features(draft, target)
    if not sharding.kernel_allowed(placement):
      draft = draft.replace(config=draft.config.replace(matmul="xla"))
    if placement is not None:
      draft = draft.replace(params=sharding.place_params(
          draft.params, param_logical_axes(draft.config), placement), placement=placement)
    return draft, (None if isinstance(draft, FeatureDrafter) else draft.config.max_len)
  if isinstance(draft, PromptLookup):
    return draft.replace(vocab_size=target.config.vocab_size), None
  if isinstance(draft, Drafter):  # any other implementation of the protocol, as it is
    check_hidden_layers(target.config, draft.feature_layers)
    return draft, None
  raise ValueError(f"draft must be a specjax Model (e.g. sj.load(...), sj.self_draft(...)), "
                   f"a drafter such as sj.prompt_lookup(...), or a drafter name ('lookup:3', "
                   f"'self:8', 'smollm2-135m-draft', a path), got {type(draft).__name__}")


def _undrafted(target, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules,
               pad_multiple, k) -> GenerateOutput:
  """ArS for an adaptive policy that never drafts, with SpS-shaped stats (k + 1 columns)."""
  out = autoregressive.generate(target, prompts, max_new_tokens, sampling, key, eos_id, mesh,
                                rules, pad_multiple)
  new_B = out.stats.new_tokens_B
  zeros_B = jnp.zeros_like(new_B)
  hist_BG = jnp.zeros((new_B.shape[0], k + 1), jnp.int32).at[:, 0].set(new_B)
  stats = out.stats.replace(accepted_histogram_BG=hist_BG, drafted_B=zeros_B,
                            rejected_B=zeros_B, draft_calls=jnp.zeros((), jnp.int32))
  return dataclasses.replace(out, stats=stats)


def speculative_generate(target: Model, draft, prompts, k: int = 4, max_new_tokens: int = 32,
                         sampling: Sampling = Sampling(temperature=0.0),
                         key: Optional[jax.Array] = None, eos_id=inputs.MODEL_EOS,
                         return_state: bool = False, mesh=None, rules=None,
                         draft_rules=None, pad_multiple: int = 16,
                         adaptive_k: Optional[AdaptiveK] = None) -> GenerateOutput:
  """`sj.speculative_generate(target, draft, prompts, k, max_new_tokens, sampling, key)`.

  `draft`: a Model sharing the target's vocab (a trained draft, `sj.self_draft`),
  a drafter (`sj.prompt_lookup`), or a drafter name (`sj.build_drafter`:
  "lookup:3", "self:8", "smollm2-135m-draft", a path). Output, `eos_id` and `pad_multiple` as
  `sj.generate`, with `stats`
  holding target/draft calls, the per-row accepted histogram over 0..k,
  acceptance rate and mean accepted length (bonus token included).
  `mesh` shards both models (target by `rules`, draft by `draft_rules`,
  default: the target's; `sharding.REPLICATED_RULES` keeps a small draft whole
  on every device) and splits the batch over 'data'.
  `adaptive_k` (`sj.AdaptiveK`): each row drafts up to k tokens per iteration, as
  many as its running acceptance and the costs make worth it (`decoding.adaptive`);
  None: always k. A policy that would never draft (its costs, measured at this batch size,
  make m = 0 the choice at the prior) runs ArS (`sj.generate`) with this call's arguments:
  its stats then count 0 drafts and one block of one token per new token.
  """
  engine.check_model(target, "target")
  k = inputs.as_int("k (draft tokens per iteration)", k, 1)
  draft_placement = sharding.make_placement(mesh, draft_rules or rules)
  drafter, draft_max_len = _as_drafter(draft, target, draft_placement)
  params, prompt_BT, prompt_len_B, key, knobs, opts = engine.prepare(
      target, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules, k=k,
      max_len=min(target.config.max_len, draft_max_len or target.config.max_len),
      pad_multiple=pad_multiple)
  if adaptive_k is not None:
    if not isinstance(adaptive_k, AdaptiveK):
      raise ValueError(f"adaptive_k must be a specjax.AdaptiveK or None, got "
                       f"{type(adaptive_k).__name__}")
    # A drafter that calls no model (prompt lookup) drafts for free.
    c = adaptive_k.c if drafter.calls_per_proposal(k) else 0.0
    opts = dataclasses.replace(opts, adaptive=adaptive_k.for_k(k, c))
    if not return_state and adaptive.never_drafts(opts.adaptive):
      return _undrafted(target, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules,
                        pad_multiple, k)
  tokens, lengths, stats, cache, draft_state = engine.two_phases(
      engine.Phase(_prefill_jit, (params, drafter, prompt_BT, prompt_len_B, knobs),
                   dict(opts=opts)),
      lambda state: engine.Phase(_loop_jit, (params, drafter, state, prompt_len_B, key),
                                 dict(opts=opts)))
  out = engine.finish(target, tokens, lengths, stats)
  return (out, cache, draft_state) if return_state else out
