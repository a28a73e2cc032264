"""`Model`: config + params (+ tokenizer), and `init_model` for random models."""
import dataclasses
import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from specjax.models.config import ModelConfig
from specjax.models.feature_draft import feature_variables
from specjax.models.transformer import Transformer


@dataclasses.dataclass(frozen=True)
class Model:
  """A model as researchers hold it: architecture, weights, and (optionally) a tokenizer.

  `params` is a plain nested dict of arrays; `config` is static. `eos_id` is the
  default end-of-sequence id used by the samplers (None: never stop early).
  """
  config: ModelConfig
  params: Any
  tokenizer: Optional[Any] = None
  eos_id: Optional[int] = None
  name: str = "model"

  def replace(self, **kw) -> "Model":
    return dataclasses.replace(self, **kw)

  @property
  def num_params(self) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(self.params))

  @property
  def param_bytes(self) -> int:
    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(self.params))


def _init_variables(config: ModelConfig, key):
  if config.feature_layers:  # a feature draft: its own network
    return feature_variables(config, key)
  tokens = jnp.zeros((1, 1), jnp.int32)
  return Transformer(config).init(key, tokens)


def init_params(config: ModelConfig, key: jax.Array):
  """Random parameters (normal(init_std) weights, unit norm scales), as a plain dict."""
  return nn.unbox(jax.jit(_init_variables, static_argnums=0)(config, key))["params"]


def init_model(config: ModelConfig, key: jax.Array, eos_id: Optional[int] = None,
               name: str = "random") -> Model:
  """`sj.init_model(sj.ModelConfig(...), key)`: a randomly initialised model."""
  return Model(config=config, params=init_params(config, key), eos_id=eos_id, name=name)


@functools.lru_cache(maxsize=64)
def _param_shapes(config: ModelConfig):
  """{path: shape} of `init_params(config)`, traced only (nothing is computed)."""
  tree = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
  return {jax.tree_util.keystr(p): tuple(x.shape)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_params(config: ModelConfig, params, what: str = "model") -> None:
  """Raises ValueError naming the first tensor that `config` lacks, wants, or shapes otherwise
  (before a trace would fail inside flax)."""
  want = _param_shapes(config)
  have = {jax.tree_util.keystr(p): tuple(getattr(x, "shape", ()))
          for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
  for path in sorted(set(want) | set(have)):
    if want.get(path) != have.get(path):
      raise ValueError(
          f"{what}'s params do not match its config at params{path}: the config wants "
          f"{want.get(path, 'no such tensor')}, the params hold "
          f"{have.get(path, 'no such tensor')}")


@functools.lru_cache(maxsize=64)
def param_logical_axes(config: ModelConfig):
  """The logical axis names of every parameter (a pytree of PartitionSpecs of names).

  Cached per config (it traces the model's init): the samplers ask for it on
  every sharded call. Treat the result as read-only.
  """
  shapes = jax.eval_shape(functools.partial(_init_variables, config), jax.random.key(0))
  return nn.get_partition_spec(shapes)["params"]
