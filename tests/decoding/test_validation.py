"""Every bad argument of the public API: a clear error naming it, before anything compiles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from tests.helpers import tiny_model

M = tiny_model()
P = [[1, 2, 3, 1, 2]]
# A model whose params do not have its config's shapes (a half-width embedding).
BAD_PARAMS = M.replace(params={**M.params, "embedding_VD": M.params["embedding_VD"][:, :32]})

CASES = [
    # (name, call, exception type, substring of the message)
    ("prompts None", lambda: sj.generate(M, None), ValueError, "prompts must be a list"),
    ("prompts int", lambda: sj.generate(M, 5), ValueError, "prompts must be a list"),
    ("model None", lambda: sj.generate(None, P), ValueError, "model must be a specjax Model"),
    ("model str", lambda: sj.generate("tiny", P), ValueError, "model must be a specjax Model"),
    ("target None", lambda: sj.speculative_generate(None, "lookup", P), ValueError,
     "target must be a specjax Model"),
    ("mesh str", lambda: sj.generate(M, P, mesh="2x4"), ValueError, "mesh must be a"),
    ("key int", lambda: sj.generate(M, P, key=3), ValueError, "key must be a JAX PRNG key"),
    ("max_new_tokens bool", lambda: sj.generate(M, P, max_new_tokens=True), TypeError,
     "max_new_tokens must be an integer"),
    ("max_new_tokens float", lambda: sj.generate(M, P, max_new_tokens=4.0), TypeError,
     "max_new_tokens must be an integer"),
    ("eos_id out of vocab", lambda: sj.generate(M, P, eos_id=10**6), ValueError, "eos_id"),
    ("eos_id bool", lambda: sj.generate(M, P, eos_id=True), TypeError, "eos_id"),
    ("pad_multiple 0", lambda: sj.generate(M, P, pad_multiple=0), ValueError, "pad_multiple"),
    ("params shapes", lambda: sj.generate(BAD_PARAMS, P), ValueError,
     "params['embedding_VD']"),
    ("draft params shapes", lambda: sj.speculative_generate(M, BAD_PARAMS, P), ValueError,
     "draft's params do not match"),
    ("k bool", lambda: sj.speculative_generate(M, "lookup", P, k=True), TypeError, "k "),
    ("k 0", lambda: sj.speculative_generate(M, "lookup", P, k=np.int64(0)), ValueError,
     "k (draft tokens per iteration) must be an integer >= 1"),
    ("temperature bool", lambda: sj.Sampling(True), TypeError, "Sampling.temperature"),
    ("temperature nan", lambda: sj.Sampling(float("nan")), ValueError, "Sampling.temperature"),
    ("top_k bool", lambda: sj.Sampling(1.0, top_k=np.bool_(True)), TypeError, "Sampling.top_k"),
    ("top_k float", lambda: sj.Sampling(1.0, top_k=2.0), TypeError, "Sampling.top_k"),
    ("top_p bool", lambda: sj.Sampling(1.0, top_p=True), TypeError, "Sampling.top_p"),
    ("top_p 0", lambda: sj.Sampling(1.0, top_p=0.0), ValueError, "Sampling.top_p"),
    ("lookup bool", lambda: sj.prompt_lookup(True), TypeError, "max_ngram"),
    ("lookup str", lambda: sj.prompt_lookup("3"), TypeError, "max_ngram"),
    ("lookup min > max", lambda: sj.prompt_lookup(2, 3), ValueError, "min_ngram"),
    ("self_draft bool", lambda: sj.self_draft(M, True), TypeError, "num_layers"),
    ("self_draft too many", lambda: sj.self_draft(M, 99), ValueError, "num_layers"),
    ("self_draft None target", lambda: sj.self_draft(None, 1), ValueError, "target"),
    ("self:abc", lambda: sj.build_drafter("self:abc", M), ValueError, "self:N"),
    ("AdaptiveK c bool", lambda: sj.AdaptiveK(c=True), TypeError, "AdaptiveK.c"),
    ("AdaptiveK lengths str", lambda: sj.AdaptiveK(lengths="12"), ValueError,
     "AdaptiveK.lengths"),
    ("AdaptiveK cost inf", lambda: sj.AdaptiveK(lengths=(1,), iteration_costs=(float("inf"),)),
     ValueError, "AdaptiveK.iteration_costs"),
]


@pytest.mark.parametrize("call,exc,text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_raises_a_clear_error(call, exc, text):
  with pytest.raises(exc) as info:
    call()
  assert text in str(info.value)
  assert isinstance(info.value, ValueError)  # type errors are ValueErrors too: one except


def test_numpy_and_jax_scalars_give_the_same_tokens_as_python_numbers():
  key = jax.random.key(1)
  prompts = [[5, 6, 7, 5, 6, 7, 5]]
  want = sj.speculative_generate(M, sj.prompt_lookup(3), prompts, k=2, max_new_tokens=6,
                                 sampling=sj.Sampling(0.7, top_k=3), key=key)
  got = sj.speculative_generate(M, sj.prompt_lookup(jnp.int32(3)), prompts, k=np.int64(2),
                                max_new_tokens=np.int64(6),
                                sampling=sj.Sampling(np.float32(0.7), top_k=np.int64(3)), key=key)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  assert sj.Sampling(np.float32(0.7), np.int64(3)) == sj.Sampling(float(np.float32(0.7)), 3)
  assert sj.self_draft(M, np.int64(1)).config.num_layers == 1
