"""Autoregressive sampling (ArS): the whole generation in one jit, one while_loop."""
import dataclasses
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from flax import struct

from specjax import sharding
from specjax.decoding import inputs
from specjax.decoding.sampling import Sampling, sample, warp
from specjax.decoding.stats import Stats, init_stats
from specjax.models.config import ModelConfig
from specjax.models.kv_cache import KVCache, init_cache
from specjax.models.model import Model
from specjax.models.transformer import forward


@dataclasses.dataclass(frozen=True)
class GenerateOutput:
  tokens: jax.Array   # int32[B, max_new_tokens]; after a row's end: pad_id (0)
  lengths: jax.Array  # int32[B]; new tokens per row, its EOS included
  stats: Stats
  texts: Optional[list] = None  # decoded rows, when the model has a tokenizer

  def row(self, b: int) -> list:
    return [int(t) for t in self.tokens[b, : int(self.lengths[b])]]


@dataclasses.dataclass(frozen=True)
class Options:  # static options of both samplers: one compilation per distinct value
  config: ModelConfig
  sampling: Sampling
  max_new_tokens: int
  capacity: int
  eos_id: Optional[Tuple[int, ...]]  # stop ids
  placement: Optional[sharding.Placement] = None
  k: int = 0  # draft tokens per iteration (speculative sampling)


def prepare(model: Model, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules,
            k: int = 0, max_len: Optional[int] = None, pad_multiple: int = 16):
  """Checks every input on the host (before compiling) and places the batch.

  Returns (params, prompt_BT, prompt_len_B, key, Options). `k` > 0 reserves
  the k + 1 slots a verification call writes past the committed tokens.
  """
  if not isinstance(sampling, Sampling):
    raise ValueError(f"sampling must be a specjax.Sampling, got {type(sampling).__name__}")
  cfg = model.config
  max_len = cfg.max_len if max_len is None else max_len
  eos_id = inputs.check_eos(model.eos_id if eos_id is inputs.MODEL_EOS else eos_id,
                            cfg.vocab_size)
  ids = inputs.encode_prompts(prompts, model.tokenizer)
  prompt_BT, prompt_len_B, capacity = inputs.pack_prompts(
      ids, cfg.vocab_size, max_len, max_new_tokens, extra_slots=k + 1 if k else 0,
      pad_multiple=pad_multiple)
  longest = int(prompt_len_B.max())
  if k and longest + max_new_tokens + k > max_len:
    raise ValueError(f"prompt ({longest} tokens) + max_new_tokens ({max_new_tokens}) + k ({k}) "
                     f"= {longest + max_new_tokens + k} exceeds the cache capacity the models "
                     f"allow (max_len {max_len})")
  if key is None:
    if not sampling.greedy:
      raise ValueError("sampling with temperature > 0 needs a PRNG key: pass key=...")
    key = jax.random.key(0)
  placement = sharding.make_placement(mesh, rules)
  params = model.params
  if placement is not None:
    params = sharding.place_params(params, cfg, placement)
    prompt_BT, prompt_len_B = sharding.place_inputs(placement, len(ids), prompt_BT, prompt_len_B)
  opts = Options(cfg, sampling, int(max_new_tokens), capacity, eos_id, placement, k)
  return params, prompt_BT, prompt_len_B, key, opts


def finish(model: Model, tokens, lengths, stats) -> GenerateOutput:
  texts = None
  if model.tokenizer is not None:
    texts = [model.tokenizer.decode(r[:n]) for r, n in zip(tokens.tolist(), lengths.tolist())]
  return GenerateOutput(tokens=tokens, lengths=lengths, stats=stats, texts=texts)


@struct.dataclass
class _State:
  step: jax.Array       # int32[]: columns of tokens_BM written so far
  tokens_BM: jax.Array  # int32[B, max_new_tokens]
  last_B: jax.Array     # int32[B]: the token fed to the next call
  done_B: jax.Array     # bool[B]: row ended (EOS or budget); it stops changing
  cache: KVCache
  stats: Stats


def _emit(state: _State, tok_B, opts: Options) -> _State:
  """Writes this step's token for live rows and updates ends and counts."""
  live_B = ~state.done_B
  col = jnp.where(live_B, tok_B, 0)
  tokens_BM = jax.lax.dynamic_update_slice(state.tokens_BM, col[:, None], (0, state.step))
  n_B = state.stats.new_tokens_B + live_B
  done_B = state.done_B | (n_B >= opts.max_new_tokens)
  if opts.eos_id is not None:
    done_B |= inputs.is_eos(tok_B, opts.eos_id)
  return state.replace(step=state.step + 1, tokens_BM=tokens_BM, last_B=tok_B, done_B=done_B,
                       stats=state.stats.replace(new_tokens_B=n_B))


def _generate(params, prompt_BT, prompt_len_B, key, opts: Options):
  with sharding.active(opts.placement):  # activation/cache constraints while tracing
    return _generate_traced(params, prompt_BT, prompt_len_B, key, opts)


def _generate_traced(params, prompt_BT, prompt_len_B, key, opts: Options):
  B = prompt_BT.shape[0]
  cache = sharding.constrain_cache(init_cache(opts.config, B, opts.capacity))
  logits_B1V, cache = forward(params, opts.config, prompt_BT, cache, logits_at_B=prompt_len_B - 1)
  cache = cache.rollback(prompt_len_B)  # padding slots past each prompt are stale
  state = _State(step=jnp.zeros((), jnp.int32),
                 tokens_BM=jnp.zeros((B, opts.max_new_tokens), jnp.int32),
                 last_B=jnp.zeros((B,), jnp.int32), done_B=jnp.zeros((B,), bool),
                 cache=cache, stats=init_stats(B, 0))
  first_B = sample(jax.random.fold_in(key, 0), warp(logits_B1V[:, 0], opts.sampling),
                   opts.sampling)
  state = _emit(state, first_B, opts)

  def cond(s: _State):
    return (s.step < opts.max_new_tokens) & ~jnp.all(s.done_B)

  def body(s: _State):
    logits_B1V, cache = forward(params, opts.config, s.last_B[:, None], s.cache)
    tok_B = sample(jax.random.fold_in(key, s.step), warp(logits_B1V[:, 0], opts.sampling),
                   opts.sampling)
    live_B = (~s.done_B).astype(jnp.int32)
    stats = s.stats.replace(target_calls=s.stats.target_calls + 1,
                            accepted_histogram_BG=s.stats.accepted_histogram_BG + live_B[:, None])
    return _emit(s.replace(cache=cache, stats=stats), tok_B, opts)

  state = jax.lax.while_loop(cond, body, state)
  out = (state.tokens_BM, state.stats.new_tokens_B, state.stats)
  return jax.tree.map(sharding.replicate, out) + (state.cache,)


_generate_jit = jax.jit(_generate, static_argnames="opts")


def generate(model: Model, prompts, max_new_tokens: int = 32,
             sampling: Sampling = Sampling(temperature=0.0), key: Optional[jax.Array] = None,
             eos_id=inputs.MODEL_EOS, return_cache: bool = False, mesh=None,
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
  params, prompt_BT, prompt_len_B, key, opts = prepare(model, prompts, max_new_tokens, sampling,
                                                       key, eos_id, mesh, rules,
                                                       pad_multiple=pad_multiple)
  tokens, lengths, stats, cache = _generate_jit(params, prompt_BT, prompt_len_B, key, opts=opts)
  out = finish(model, tokens, lengths, stats)
  return (out, cache) if return_cache else out
