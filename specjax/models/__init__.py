"""Models: the Llama-family transformer, its KV cache, and model containers."""
from specjax.models.config import ModelConfig
from specjax.models.kv_cache import KVCache, init_cache
from specjax.models.model import Model, init_model, init_params, param_logical_axes
from specjax.models.transformer import Transformer, forward
