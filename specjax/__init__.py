"""specjax: speculative sampling research in JAX/Flax.

  import specjax as sj
  model = sj.init_model(sj.ModelConfig(vocab_size=16), jax.random.key(0))
  out = sj.generate(model, [[1, 2, 3]], max_new_tokens=8, sampling=sj.Sampling(0.0))
"""
from specjax.decoding import (GenerateOutput, ModelDrafter, PromptLookup, Sampling, Stats,
                              generate, prompt_lookup, sample, self_draft, speculative_generate,
                              warp)
from specjax.models import (KVCache, Model, ModelConfig, Transformer, forward, init_cache,
                            init_model, init_params, param_logical_axes)

from specjax.models.loading import load, save

__version__ = "0.1.0"
