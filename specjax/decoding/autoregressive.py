"""Autoregressive sampling (ArS): a jitted prefill, then one jitted while_loop.

The loop body only: one target call on each row's newest token, one sampled
token (a block without drafts); `engine` does the rest, as for SpS.
"""
from typing import Optional

import jax
import jax.numpy as jnp

from specjax import sharding
from specjax.decoding import engine, inputs
from specjax.decoding.engine import GenerateOutput, Options
from specjax.decoding.sampling import Sampling, sample, warp
from specjax.models.kv_cache import init_cache
from specjax.models.model import Model
from specjax.models.transformer import forward


def _prefill(params, prompt_BT, prompt_len_B, key, knobs: engine.Knobs,
             opts: Options) -> engine.LoopState:
  """The target's cache over the prompts; the prefill's logits at each prompt's last token
  give the first token, drawn with fold_in(key, 0)."""
  with sharding.active(opts.placement):  # activation/cache constraints while tracing
    B = prompt_BT.shape[0]
    cache = sharding.constrain_cache(init_cache(opts.config, B, opts.capacity))
    logits_B1V, cache = forward(params, opts.config, prompt_BT, cache,
                                logits_at_B=prompt_len_B - 1, empty_cache=True)
    state = engine.start(prompt_BT, prompt_len_B, cache, (), knobs, opts)
    first_B = sample(jax.random.fold_in(key, 0), warp(logits_B1V[:, 0], knobs.sampling),
                     knobs.sampling)
    zero_B = jnp.zeros((B,), jnp.int32)
    return engine.advance(state, jnp.zeros((B, 0), jnp.int32), zero_B, first_B, cache, (),
                          opts, count=False)


def _loop(params, state: engine.LoopState, prompt_len_B, key, opts: Options):
  with sharding.active(opts.placement):
    B = prompt_len_B.shape[0]
    no_drafts_B0 = jnp.zeros((B, 0), jnp.int32)
    zero_B = jnp.zeros((B,), jnp.int32)

    def body(s: engine.LoopState):
      step = s.stats.target_calls + 1  # the prefill drew with fold_in(key, 0)
      last_B = jnp.take_along_axis(s.seq_BS, (s.n_B - 1)[:, None], axis=1)
      logits_B1V, cache = forward(params, opts.config, last_B, s.cache)
      tok_B = sample(jax.random.fold_in(key, step), warp(logits_B1V[:, 0], s.knobs.sampling),
                     s.knobs.sampling)
      return engine.advance(s, no_drafts_B0, zero_B, tok_B, cache, (), opts)

    (tokens_BM, new_B, stats), state = engine.run(state, body, prompt_len_B, opts)
    return tokens_BM, new_B, stats, state.cache


_prefill_jit = jax.jit(_prefill, static_argnames="opts")
_loop_jit = jax.jit(_loop, static_argnames="opts", donate_argnums=1)


def generate(model: Model, prompts, max_new_tokens: int = 32,
             sampling: Sampling = Sampling(temperature=0.0), key: Optional[jax.Array] = None,
             eos_id=inputs.MODEL_EOS, mesh=None,
             rules=None, pad_multiple: int = 16) -> GenerateOutput:
  """`sj.generate(model, prompts, max_new_tokens, sampling, key)`: autoregressive sampling.

  `prompts`: a list of strings (needs `model.tokenizer`) or of token-id lists,
  of any lengths (a ragged batch). Rows stop at `eos_id` (default: the model's;
  a list: any of those ids, e.g. a stop token; None: never) or after
  `max_new_tokens`. Reproducible for a given `key`. Prompt widths are padded
  to multiples of `pad_multiple`: one compilation per width, so raise it
  when many prompts of varied lengths go through one at a time.
  `mesh` (+ optional logical-axis `rules`, default `sharding.DEFAULT_RULES`)
  runs the same program sharded: params by the rules, the batch over 'data'.
  """
  params, prompt_BT, prompt_len_B, key, knobs, opts = engine.prepare(
      model, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules,
      pad_multiple=pad_multiple)
  tokens, lengths, stats, _ = engine.two_phases(
      engine.Phase(_prefill_jit, (params, prompt_BT, prompt_len_B, key, knobs), dict(opts=opts)),
      lambda state: engine.Phase(_loop_jit, (params, state, prompt_len_B, key), dict(opts=opts)))
  return engine.finish(model, tokens, lengths, stats)
