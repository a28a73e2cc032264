import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from tests.helpers import tiny_model

LENS = [3, 7, 12]  # a ragged batch
TOTAL = 22


def _tokens(model, seed=1):
  return np.random.default_rng(seed).integers(0, model.config.vocab_size, (len(LENS), TOTAL))


def _prefill(model, tokens, capacity=64, empty_cache=False):
  B = tokens.shape[0]
  width = max(LENS)
  prompt = np.zeros((B, width), np.int32)
  for b, n in enumerate(LENS):
    prompt[b, :n] = tokens[b, :n]
  cache = sj.init_cache(model.config, B, capacity)
  logits, cache = sj.forward(model.params, model.config, jnp.asarray(prompt), cache,
                             empty_cache=empty_cache)
  return logits, cache.rollback(jnp.array(LENS))


@pytest.mark.parametrize("qkv_bias,tie,empty", [(False, True, False), (True, False, False),
                                                (False, True, True)])
@pytest.mark.parametrize("chunk", [1, 5])
def test_incremental_equals_full_forward(chunk, qkv_bias, tie, empty):
  """`empty`: the prefill skips reading the (empty) cache, as the samplers' prefills do."""
  model = tiny_model(qkv_bias=qkv_bias, tie_embeddings=tie)
  tokens = _tokens(model)
  full, _ = sj.forward(model.params, model.config, jnp.asarray(tokens))
  full = np.asarray(full)
  logits, cache = _prefill(model, tokens, empty_cache=empty)
  for b, n in enumerate(LENS):  # prefill logits at each row's real positions
    np.testing.assert_allclose(np.asarray(logits)[b, :n], full[b, :n], atol=1e-5, rtol=0)
  pos = np.array(LENS)
  step = jax.jit(lambda p, t, c: sj.forward(p, model.config, t, c))
  while pos.max() + chunk <= TOTAL:
    chunk_BT = np.stack([tokens[b, p:p + chunk] if p + chunk <= TOTAL else
                         np.zeros(chunk, np.int64) for b, p in enumerate(pos)])
    logits, cache = step(model.params, jnp.asarray(chunk_BT), cache)
    for b, p in enumerate(pos):
      if p + chunk <= TOTAL:
        np.testing.assert_allclose(np.asarray(logits)[b], full[b, p:p + chunk], atol=1e-5,
                                   rtol=0)
    np.testing.assert_array_equal(np.asarray(cache.length_B), pos + chunk)
    pos = pos + chunk


def test_a_prefill_that_skips_the_empty_cache_gives_the_same_logits_and_cache():
  model = tiny_model()
  tokens = _tokens(model)
  want_logits, want = _prefill(model, tokens, capacity=128)
  got_logits, got = _prefill(model, tokens, capacity=128, empty_cache=True)
  for b, n in enumerate(LENS):
    np.testing.assert_allclose(np.asarray(got_logits)[b, :n], np.asarray(want_logits)[b, :n],
                               atol=1e-5, rtol=0)
    for k_w, k_g in zip(want.k + want.v, got.k + got.v):
      np.testing.assert_allclose(np.asarray(k_g)[b, :, :n], np.asarray(k_w)[b, :, :n], atol=1e-5,
                                 rtol=1e-5)
  np.testing.assert_array_equal(got.length_B, want.length_B)


def test_causal_blocks_of_query_rows_give_the_same_logits_and_cache(monkeypatch):
  """Self-attention in blocks of CAUSAL_CHUNK query rows (a long prompt's) = in one block."""
  from specjax.models import transformer
  model = tiny_model()
  tokens = _tokens(model)
  want, _ = sj.forward(model.params, model.config, jnp.asarray(tokens))
  want_logits, want_cache = _prefill(model, tokens, empty_cache=True)
  monkeypatch.setattr(transformer, "CAUSAL_CHUNK", 5)  # blocks of 5, 5, 2 and 5 x 4 + 2
  got, _ = sj.forward(model.params, model.config, jnp.asarray(tokens))
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=0)
  got_logits, got_cache = _prefill(model, tokens, empty_cache=True)
  np.testing.assert_allclose(np.asarray(got_logits), np.asarray(want_logits), atol=1e-5, rtol=0)
  for a, b in zip(got_cache.k + got_cache.v, want_cache.k + want_cache.v):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


def test_rollback_is_o1_and_stale_slots_are_ignored():
  model = tiny_model()
  tokens = _tokens(model)
  full, _ = sj.forward(model.params, model.config, jnp.asarray(tokens))
  _, cache = _prefill(model, tokens)
  pos = np.array(LENS)
  # Write 4 garbage tokens per row, then roll back by a different amount per row.
  garbage = np.full((3, 4), 5, np.int32)
  _, dirty = sj.forward(model.params, model.config, jnp.asarray(garbage), cache)
  back = dirty.rollback(jnp.asarray(pos))
  assert all(a is b for a, b in zip(back.k, dirty.k))  # nothing copied
  nxt = np.stack([tokens[b, p:p + 3] for b, p in enumerate(pos)])
  logits, _ = sj.forward(model.params, model.config, jnp.asarray(nxt), back)
  for b, p in enumerate(pos):
    np.testing.assert_allclose(np.asarray(logits)[b], np.asarray(full)[b, p:p + 3], atol=1e-5,
                               rtol=0)


def test_logits_at_selects_one_position_per_row():
  model = tiny_model()
  tokens = _tokens(model)
  full, _ = sj.forward(model.params, model.config, jnp.asarray(tokens))
  at = jnp.array([0, 5, 21])
  one, _ = sj.forward(model.params, model.config, jnp.asarray(tokens), logits_at_B=at)
  assert one.shape == (3, 1, model.config.vocab_size)
  # 3 rows go through the CPU matmul kernel, 66 through XLA's GEMM: float32 tolerance.
  np.testing.assert_allclose(one[:, 0], full[jnp.arange(3), at], atol=1e-5, rtol=1e-5)


def test_params_carry_logical_axis_names():
  cfg = tiny_model().config
  axes = sj.param_logical_axes(cfg)
  assert tuple(axes["embedding_VD"]) == ("vocab", "embed")
  attn = axes["layers_1"]["attn"]
  assert tuple(attn["wq_DNH"]) == ("embed", "heads", "head_dim")
  assert tuple(attn["wk_DKH"]) == ("embed", "kv_heads", "head_dim")
  assert tuple(axes["layers_0"]["mlp"]["wdown_FD"]) == ("mlp", "embed")
  params = sj.init_params(cfg, jax.random.key(0))
  assert jax.tree.structure(params) == jax.tree.structure(
      axes, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))


def test_decode_loop_never_copies_the_cache():
  """Structural performance check: the while-loop body updates the cache in place.

  A full-cache copy per layer per step (what XLA did when attention read the
  cache it had just updated) shows up as `copy` ops of cache shape in the body.
  """
  from specjax.decoding import autoregressive as ar
  model = tiny_model()
  cfg = model.config
  opts = ar.Options(cfg, 16, 128)
  prompt_len_B, key = np.array([16, 9], np.int32), jax.random.key(0)
  state = ar._prefill_jit(model.params, np.zeros((2, 16), np.int32), prompt_len_B, key,
                          ar.engine.Knobs.of(sj.Sampling(0.0), None), opts=opts)
  hlo = ar._loop_jit.lower(model.params, state, prompt_len_B, key,
                           opts=opts).compile().as_text()
  shape = f"f32[2,{cfg.num_kv_heads},128,{cfg.head_dim}]"
  body = [b for b in hlo.split("\n\n") if "while" in b.split("\n")[0] or "arg_tuple" in
          b.split("\n")[0]]
  assert body, "no while body found in the compiled HLO"
  copies = [l for b in body for l in b.split("\n") if re.search(re.escape(shape) + r"\{[0-9,]*\} copy\(", l)]
  assert copies == []


@pytest.mark.parametrize("tie", [True, False])
def test_hidden_layers_are_the_residual_stream_with_and_without_a_cache(tie):
  model = tiny_model(tie_embeddings=tie, num_layers=3)
  cfg, params = model.config, model.params
  tokens = jnp.asarray(_tokens(model))
  logits, _ = sj.forward(params, cfg, tokens)
  logits2, _, hidden_BTLD = sj.forward(params, cfg, tokens, hidden_layers=(2, 0))
  np.testing.assert_array_equal(logits2, logits)  # asking for features changes nothing else
  assert hidden_BTLD.shape == tokens.shape + (2, cfg.d_model)
  # The last layer's stream, through the final norm and the head, is the logits.
  x = np.asarray(hidden_BTLD[:, :, 0], np.float64)
  x = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + cfg.norm_eps)
  x = x * np.asarray(params["final_norm"]["scale"])
  head_DV = params["embedding_VD"].T if tie else params["lm_head_DU"]
  np.testing.assert_allclose(x @ np.asarray(head_DV), logits, atol=1e-4, rtol=0)
  # Layer 0's stream is the last layer's stream of the model cut after layer 0.
  cut = cfg.replace(num_layers=1)
  cut_params = {k: v for k, v in params.items() if k != "layers_1" and k != "layers_2"}
  _, _, h0 = sj.forward(cut_params, cut, tokens, hidden_layers=(0,))
  np.testing.assert_allclose(hidden_BTLD[:, :, 1], h0[:, :, 0], atol=1e-6, rtol=0)
  # With a cache (prefill, then one token per call) the features equal the full forward's.
  cache = sj.init_cache(cfg, tokens.shape[0], 64)
  _, cache, h_pre = sj.forward(params, cfg, tokens[:, :10], cache, hidden_layers=(2, 0))
  steps = [h_pre]
  for t in range(10, tokens.shape[1]):
    _, cache, h = sj.forward(params, cfg, tokens[:, t:t + 1], cache, hidden_layers=(2, 0))
    steps.append(h)
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), hidden_BTLD, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("layers", [(3,), (-1,), (0, 0), (True,)])
def test_hidden_layers_out_of_range_are_refused_before_tracing(layers):
  model = tiny_model(num_layers=3)
  with pytest.raises(ValueError, match="hidden_layers"):
    sj.forward(model.params, model.config, jnp.zeros((1, 2), jnp.int32), hidden_layers=layers)
