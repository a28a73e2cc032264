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
from typing import Optional

import jax
import jax.numpy as jnp

from specjax import sharding
from specjax.decoding import engine, inputs
from specjax.decoding.engine import GenerateOutput, Options
from specjax.decoding.drafters import Drafter, Features, ModelDrafter, PromptLookup, build_drafter
from specjax.decoding.feature_drafter import FeatureDrafter, drafter_of
from specjax.decoding.sampling import Sampling, sample, warp
from specjax.models.kv_cache import init_cache
from specjax.models.model import Model, param_logical_axes
from specjax.models.transformer import check_hidden_layers, forward


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


def _prefill(target_params, drafter, prompt_BT, prompt_len_B, opts: Options) -> engine.LoopState:
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
    return engine.start(prompt_BT, prompt_len_B, cache, draft_state, opts)


def _loop(target_params, drafter, state: engine.LoopState, prompt_len_B, key, opts: Options):
  with sharding.active(opts.placement):
    return _loop_traced(target_params, drafter, state, prompt_len_B, key, opts)


def _loop_traced(target_params, drafter, state, prompt_len_B, key, opts: Options):
  k, cfg = opts.k, opts.config
  layers = tuple(drafter.feature_layers)

  def body(s: engine.LoopState) -> engine.LoopState:
    it = s.stats.target_calls  # one target call per iteration
    k_draft, k_acc, k_next = jax.random.split(jax.random.fold_in(key, it), 3)
    draft_BG, q_BGV, draft_state = drafter.propose(s.draft_state, s.seq_BS, s.n_B, k,
                                                   opts.sampling, k_draft)
    last_B = jnp.take_along_axis(s.seq_BS, (s.n_B - 1)[:, None], axis=1)[:, 0]
    verify_BG1 = jnp.concatenate([last_B[:, None], draft_BG], axis=1)
    if layers:  # ONE target call, with the features the drafter reads
      logits_BG1V, cache, hidden_BG1LD = forward(target_params, cfg, verify_BG1, s.cache,
                                                 hidden_layers=layers)
      features = dict(features=Features(hidden_BG1LD, s.n_B - 1))
    else:  # ONE target call
      logits_BG1V, cache = forward(target_params, cfg, verify_BG1, s.cache)
      features = {}
    p_BG1V = warp(logits_BG1V, opts.sampling)
    n_acc_B, next_BV = accept_and_correct(p_BG1V, q_BGV, draft_BG, k_acc)
    next_B = sample(k_next, next_BV, opts.sampling)
    s = engine.advance(s, draft_BG, n_acc_B, next_B, cache, draft_state, opts,
                       draft_calls=drafter.calls_per_proposal(k))
    return s.replace(draft_state=drafter.commit(s.draft_state, s.n_B, **features))

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


def speculative_generate(target: Model, draft, prompts, k: int = 4, max_new_tokens: int = 32,
                         sampling: Sampling = Sampling(temperature=0.0),
                         key: Optional[jax.Array] = None, eos_id=inputs.MODEL_EOS,
                         return_state: bool = False, mesh=None, rules=None,
                         draft_rules=None, pad_multiple: int = 16) -> GenerateOutput:
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
  """
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"k (draft tokens per iteration) must be an integer >= 1, got {k!r}")
  draft_placement = sharding.make_placement(mesh, draft_rules or rules)
  drafter, draft_max_len = _as_drafter(draft, target, draft_placement)
  params, prompt_BT, prompt_len_B, key, opts = engine.prepare(
      target, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules, k=k,
      max_len=min(target.config.max_len, draft_max_len or target.config.max_len),
      pad_multiple=pad_multiple)
  tokens, lengths, stats, cache, draft_state = engine.two_phases(
      lambda: _prefill_jit(params, drafter, prompt_BT, prompt_len_B, opts=opts),
      lambda state: _loop_jit(params, drafter, state, prompt_len_B, key, opts=opts))
  out = engine.finish(target, tokens, lengths, stats)
  return (out, cache, draft_state) if return_state else out
