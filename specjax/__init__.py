"""specjax: speculative sampling research in JAX/Flax.

  import specjax as sj
  model = sj.init_model(sj.ModelConfig(vocab_size=16), jax.random.key(0))
  out = sj.generate(model, [[1, 2, 3]], max_new_tokens=8, sampling=sj.Sampling(0.0))
"""
from specjax.decoding import (AdaptiveK, Drafter, Features, FeatureDrafter, GenerateOutput, ModelDrafter,
                              PromptLookup, Sampling, Stats, build_drafter, feature_draft,
                              generate, prompt_lookup, sample, self_draft, speculative_generate,
                              warp)
from specjax.models import (KVCache, Model, ModelConfig, Transformer, forward, init_cache,
                            init_model, init_params, param_logical_axes)

from specjax import sharding
from specjax.models.orbax_io import save_checkpoint
from specjax.models.drafts import adapted_self_draft, small_draft
from specjax.models.registry import REGISTRY, load, restore_checkpoint, save
from specjax.models.tokenizer import Tokenizer, chat_prompt

__version__ = "0.1.0"
