"""The CPU matmul kernel against XLA's dot: same values, really taken, and a working fallback.

Tolerance: a float32 dot product of length K summed in another order differs by at most
about K * eps * sum_k |x_k w_k| (the classic bound); the checks use 2 K eps (|x| @ |w|).
"""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax import sharding
from specjax.kernels import cpu_matmul
from tests.helpers import tiny_model

needs_kernel = pytest.mark.skipif(
    not cpu_matmul.available() and not os.environ.get("SPECJAX_REQUIRE_KERNEL"),
    reason=f"kernel unavailable: {cpu_matmul.status()}")

EPS = np.finfo(np.float32).eps


def _assert_close(got, x, w, nt):
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  w_KN = w[:got.shape[1]].T if nt else w
  want = x @ w_KN
  bound = 2 * x.shape[1] * EPS * (np.abs(x) @ np.abs(w_KN)) + 1e-30
  err = np.abs(np.asarray(got, np.float64) - want)
  assert np.all(err <= bound), f"max error / bound {np.max(err / bound):.2f}"


def _hlo(fn, *args) -> str:
  return jax.jit(fn).lower(*args).as_text()


def test_kernel_is_available_when_required():
  """launch/test.sh sets SPECJAX_REQUIRE_KERNEL: there, a failed build fails here."""
  if os.environ.get("SPECJAX_REQUIRE_KERNEL"):
    assert cpu_matmul.available(), cpu_matmul.status()
    assert cpu_matmul.status() in ("avx512", "avx2")


@needs_kernel
@pytest.mark.parametrize("nt", [False, True])
@pytest.mark.parametrize("M", [1, 2, 5, 6, 7, 9, 17, 32])
@pytest.mark.parametrize("K,N", [(576, 576), (576, 192), (576, 1536), (1536, 576),
                                 (37, 70), (64, 4099)])
def test_kernel_matches_xla_on_model_shapes(M, K, N, nt):
  """SmolLM2-135M's q/k/v/o, gate/up and down shapes, and odd sizes (vector and row tails)."""
  rng = np.random.default_rng(M * 7 + K + N)
  x = jnp.asarray(rng.standard_normal((M, K), np.float32))
  w = jnp.asarray(rng.standard_normal((N, K) if nt else (K, N), np.float32))
  (got,) = jax.jit(lambda x, w: cpu_matmul._kernel(x, (w,), nt, (N,)))(x, w)  # the kernel
  _assert_close(got, x, w, nt)
  # matmuls takes it up to MAX_ROWS rows, except for the single rows where XLA's GEMV is
  # faster.
  gemv = M == 1 and (nt or max(K, N) > cpu_matmul._GEMV_MAX_DIM)
  taken = "specjax_cpu_matmul" in _hlo(lambda x, w: cpu_matmul.matmuls(x, [w], nt=nt), x, w)
  assert taken == (not gemv and M <= cpu_matmul.MAX_ROWS)


@needs_kernel
def test_several_weights_and_a_sub_vocab_slice_in_one_call():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((5, 576), np.float32))
  ws = [jnp.asarray(rng.standard_normal((576, n), np.float32)) for n in (576, 192, 192)]
  fn = jax.jit(lambda x, *ws: cpu_matmul.matmuls(x, ws))
  for got, w in zip(fn(x, *ws), ws):
    _assert_close(got, x, w, nt=False)
  assert _hlo(lambda x, *ws: cpu_matmul.matmuls(x, ws), x, *ws).count("specjax_cpu_matmul") == 1
  table = jnp.asarray(rng.standard_normal((3001, 576), np.float32))  # rows 2000.. unused
  (got,) = jax.jit(lambda x, t: cpu_matmul.matmuls(x, [t], nt=True, ns=[2000]))(x, table)
  assert got.shape == (5, 2000)
  _assert_close(got, x, table, nt=True)


@needs_kernel
def test_gradients_match_xla():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((3, 64), np.float32))
  w = jnp.asarray(rng.standard_normal((64, 48), np.float32))

  def loss(mode):
    return lambda x, w: jnp.sum(jnp.sin(cpu_matmul.matmuls(x, [w], mode=mode)[0]))
  got = jax.grad(loss("auto"), argnums=(0, 1))(x, w)
  want = jax.grad(loss("xla"), argnums=(0, 1))(x, w)
  for g, h in zip(got, want):
    np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_when_the_kernel_is_taken():
  x = jnp.ones((5, 64), jnp.float32)
  w = jnp.ones((64, 32), jnp.float32)
  taken = lambda x, w, **kw: "specjax_cpu_matmul" in _hlo(
      lambda x, w: cpu_matmul.matmuls(x, [w], **kw), x, w)
  assert taken(x, w)
  assert not taken(x, w, mode="xla")
  assert not taken(jnp.ones((cpu_matmul.MAX_ROWS + 1, 64), jnp.float32), w)  # prefill size
  assert not taken(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
  assert taken(x[:1], w) and not taken(x[:1], w.T, nt=True)  # 1 row: XLA's GEMV for a head
  # No sharding rule for the custom call: the samplers resolve the mode to "xla" under a mesh.
  mesh = sharding.make_mesh((1, len(jax.devices())))
  assert not sharding.kernel_allowed(sharding.Placement(mesh))
  assert sharding.kernel_allowed(sharding.Placement(sharding.make_mesh((1, 1),
                                                                       devices=jax.devices()[:1])))
  assert sharding.kernel_allowed(None)
  model = tiny_model()
  from specjax.decoding import engine
  data_mesh = sharding.make_mesh((len(jax.devices()), 1))  # the batch over every device
  for m, want in ((data_mesh, "xla"), (None, "auto")):
    opts = engine.prepare(model, [[1, 2]] * len(jax.devices()), 4, sj.Sampling(0.0), None, None,
                          m, None)[-1]
    assert opts.config.matmul == want


def test_the_row_cut_over_is_set_by_the_environment():
  code = "from specjax.kernels import cpu_matmul; print(cpu_matmul.MAX_ROWS)"
  run = lambda value: subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, env={**os.environ, VAR: value})
  VAR = "SPECJAX_CPU_MATMUL_MAX_ROWS"
  assert run("17").stdout.strip() == "17"
  for bad in ("0", "six", "-3"):
    out = run(bad)
    assert out.returncode != 0 and f"{VAR}={bad!r}: want a positive integer" in out.stderr


def test_bad_operands_are_refused_before_compiling():
  with pytest.raises(ValueError, match="2-D"):
    cpu_matmul.matmuls(jnp.ones((2, 3, 4)), [jnp.ones((4, 5))])


def _forward_verify(model):
  """Prefill 9 tokens, then one 5-token verification call with the cache: its logits."""
  tokens = jnp.asarray(np.random.default_rng(2).integers(0, model.config.vocab_size, (1, 14)))
  cache = sj.init_cache(model.config, 1, 32)
  _, cache = sj.forward(model.params, model.config, tokens[:, :9], cache)
  fn = jax.jit(lambda p, t, c: sj.forward(p, model.config, t, c)[0])
  return fn(model.params, tokens[:, 9:], cache), fn.lower(model.params, tokens[:, 9:],
                                                          cache).as_text()


@needs_kernel
@pytest.mark.parametrize("tie", [True, False])
def test_model_verification_logits_match_xla(tie):
  model = tiny_model(tie_embeddings=tie, sub_vocab=0)
  fast, hlo = _forward_verify(model)
  slow, hlo_xla = _forward_verify(model.replace(config=model.config.replace(matmul="xla")))
  assert hlo.count("specjax_cpu_matmul") == 4 * model.config.num_layers + 1  # qkv o gu d, head
  assert "specjax_cpu_matmul" not in hlo_xla
  np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)


def test_fallback_without_the_library(monkeypatch):
  """As on a machine where the build failed: everything runs on XLA's dot."""
  model = tiny_model()
  want, _ = _forward_verify(model.replace(config=model.config.replace(matmul="xla")))
  monkeypatch.setattr(cpu_matmul, "available", lambda: False)
  got, hlo = _forward_verify(model)
  assert "specjax_cpu_matmul" not in hlo
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  out = sj.generate(model, [[1, 2, 3]], max_new_tokens=4)
  assert out.tokens.shape == (1, 4)


def test_matmul_mode_is_validated():
  with pytest.raises(ValueError, match="matmul"):
    sj.ModelConfig(matmul="mkl")


@needs_kernel
def test_gpu_and_tpu_lowering_keeps_xla_dot():
  """The kernel is chosen when lowering for CPU only (lax.platform_dependent)."""
  x = jnp.ones((5, 64), jnp.float32)
  w = jnp.ones((64, 32), jnp.float32)
  fn = jax.jit(lambda x, w: cpu_matmul.matmuls(x, [w])[0])
  ok = [jax.export.DisabledSafetyCheck.custom_call(cpu_matmul.TARGET)]
  text = lambda platform: jax.export.export(fn, platforms=[platform], disabled_checks=ok)(
      x, w).mlir_module()
  assert "specjax_cpu_matmul" in text("cpu")
  for platform in ("cuda", "tpu"):
    assert "specjax_cpu_matmul" not in text(platform)


@needs_kernel
def test_vmap_runs_the_kernel_per_item():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((3, 4, 64), np.float32))
  w = jnp.asarray(rng.standard_normal((64, 40), np.float32))
  got = jax.jit(jax.vmap(lambda x: cpu_matmul.matmuls(x, [w])[0]))(x)
  for i in range(3):
    _assert_close(got[i], x[i], w, nt=False)


@pytest.mark.slow
def test_the_kernel_builds_into_the_cache_directory_not_the_package(tmp_path):
  """A read-only install works: the build writes under $SPECJAX_CACHE and nowhere else."""
  import subprocess
  import sys
  pkg = os.path.dirname(cpu_matmul.__file__)
  before = sorted(os.listdir(pkg))
  env = dict(os.environ, SPECJAX_CACHE=str(tmp_path), JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "specjax.kernels.build", "--check"], env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  built = os.listdir(tmp_path / "kernels")
  assert len(built) == 1 and built[0] == os.path.basename(cpu_matmul.LIB_PATH), built
  assert sorted(os.listdir(pkg)) == before
