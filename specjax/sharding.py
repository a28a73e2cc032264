"""Meshes and logical-axis sharding: where params, caches and loop state live.

Parameters carry logical axis names (`sj.param_logical_axes`); a rules table
maps each logical name to a mesh axis (or None: replicated). `Placement`
(mesh + rules) is static and hashable, so the samplers take it as part of
their jit options; the same jitted program runs on 1 CPU device, 8 simulated
devices, a GPU, or a TPU pod slice across hosts (`jax.distributed`).
"""
import contextlib
import contextvars
import dataclasses
import math
from typing import Optional, Sequence, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

Rules = Tuple[Tuple[str, Optional[str]], ...]

# Megatron-style tensor parallelism over 'model', batch over 'data'.
DEFAULT_RULES: Rules = (
    ("batch", "data"), ("vocab", "model"), ("heads", "model"), ("kv_heads", "model"),
    ("mlp", "model"), ("embed", None), ("head_dim", None), ("cache_slots", None),
)
# A small draft is often best replicated: only its batch is split.
REPLICATED_RULES: Rules = (("batch", "data"),)

CACHE_AXES = ("batch", "kv_heads", "cache_slots", "head_dim")


def make_mesh(shape: Sequence[int], axis_names: Sequence[str] = ("data", "model"),
              devices=None) -> Mesh:
  """A mesh of `shape` over `devices` (default: all devices, across processes).

  One entry may be -1: it is inferred from the device count, e.g. (-1, 4).
  """
  devices = list(jax.devices() if devices is None else devices)
  if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
    raise ValueError(f"mesh shape must be a tuple of axis sizes, e.g. (2, 4), got {shape!r}")
  shape = tuple(shape)
  if len(shape) != len(axis_names):
    raise ValueError(f"mesh shape {shape} and axis names {tuple(axis_names)} differ in length")
  shape = tuple(_axis_size(s, n) for s, n in zip(shape, axis_names))
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape {shape}: at most one axis size may be -1 (inferred)")
  if shape.count(-1) == 1:
    rest = math.prod(s for s in shape if s != -1)
    if len(devices) % rest:
      raise ValueError(f"mesh shape {shape}: {len(devices)} devices do not divide by {rest}")
    shape = tuple(len(devices) // rest if s == -1 else s for s in shape)
  if math.prod(shape) != len(devices):
    raise ValueError(f"mesh shape {shape} needs {math.prod(shape)} devices but there are "
                     f"{len(devices)}; choose a shape whose product is {len(devices)}")
  return Mesh(np.array(devices).reshape(shape), tuple(axis_names))


def _axis_size(s, name: str) -> int:
  """An axis size: an integer >= 1, or -1 (inferred); NumPy integers too, never a bool."""
  ok = not isinstance(s, (bool, np.bool_)) and isinstance(s, (int, np.integer))
  if not ok or not (s >= 1 or s == -1):
    raise ValueError(f"mesh axis {name!r} size must be an integer >= 1 (or -1: inferred from "
                     f"the device count), got {s!r}")
  return int(s)


@dataclasses.dataclass(frozen=True)
class Placement:
  """A mesh and the rules that map logical axes onto it (hashable, static)."""
  mesh: Mesh
  rules: Rules = DEFAULT_RULES

  def spec(self, logical_axes: Sequence[Optional[str]]) -> P:
    table = dict(self.rules)
    mesh_axes = [table.get(a) if a is not None else None for a in logical_axes]
    for ax in mesh_axes:
      if ax is not None and ax not in self.mesh.axis_names:
        raise ValueError(f"rule maps to mesh axis {ax!r}, not in the mesh's "
                         f"{self.mesh.axis_names}")
    return P(*mesh_axes)

  def sharding(self, logical_axes: Sequence[Optional[str]]) -> NamedSharding:
    return NamedSharding(self.mesh, self.spec(logical_axes))

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def check_divides(self, shape, logical_axes, what: str) -> None:
    """A clear error when a mesh axis does not divide the dimension it shards."""
    for dim, name, ax in zip(shape, logical_axes, self.spec(logical_axes)):
      if ax is not None and dim % self.mesh.shape[ax]:
        raise ValueError(f"{what}: dimension {name!r} of size {dim} is sharded over mesh axis "
                         f"{ax!r} of size {self.mesh.shape[ax]}, which does not divide it; "
                         f"change the mesh shape or map {name!r} to None in the rules")


def place_params(params, axes, placement: Placement):
  """Puts every parameter where the rules say (checks divisibility first).

  `axes`: the params' logical axis names, a matching pytree of PartitionSpecs
  (`sj.param_logical_axes(config)`): sharding knows no model.
  """
  is_spec = lambda x: isinstance(x, P)
  flat_axes = jax.tree_util.tree_leaves_with_path(axes, is_leaf=is_spec)
  for path, spec in flat_axes:
    leaf = _get(params, path)
    placement.check_divides(leaf.shape, tuple(spec), f"parameter {jax.tree_util.keystr(path)}")
  shardings = jax.tree.map(lambda spec: placement.sharding(tuple(spec)), axes, is_leaf=is_spec)
  return jax.device_put(params, shardings)


def _get(tree, path):
  for k in path:
    tree = tree[k.key]
  return tree


# ---- activation constraints, active while a sampler traces its program ----

_ACTIVE: contextvars.ContextVar[Optional[Placement]] = contextvars.ContextVar(
    "specjax_placement", default=None)


@contextlib.contextmanager
def active(placement: Optional[Placement]):
  """Makes `constrain` place activations by `placement` while tracing."""
  token = _ACTIVE.set(placement)
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def current() -> Optional[Placement]:
  """The placement a sampler is tracing under (None: unsharded)."""
  return _ACTIVE.get()


def constrain(x: jax.Array, logical_axes: Sequence[Optional[str]]) -> jax.Array:
  """The one helper for activation sharding: a no-op without an active placement."""
  placement = current()
  if placement is None:
    return x
  return jax.lax.with_sharding_constraint(x, placement.sharding(tuple(logical_axes)))


def constrain_cache(cache):
  """Keeps a KV cache sharded as CACHE_AXES (batch, kv_heads) say."""
  if current() is None:
    return cache
  c = lambda a: constrain(a, CACHE_AXES)
  return cache.replace(k=tuple(map(c, cache.k)), v=tuple(map(c, cache.v)),
                       length_B=constrain(cache.length_B, ("batch",)))


# ---- multi-host ----

def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None, cpu_devices: Optional[int] = None):
  """`jax.distributed.initialize`, with CPU collectives (gloo) for multi-process CPU runs.

  With no arguments on a TPU VM (or under Slurm / Open MPI) JAX detects the
  cluster itself. `cpu_devices` sets the simulated CPU devices per process.
  """
  if cpu_devices:
    jax.config.update("jax_num_cpu_devices", int(cpu_devices))
  if coordinator_address is not None or num_processes not in (None, 1):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def split_for_process(items: Sequence, process_index: Optional[int] = None,
                      process_count: Optional[int] = None) -> list:
  """This process's contiguous share of `items` (e.g. evaluation prompts)."""
  i = jax.process_index() if process_index is None else process_index
  n = jax.process_count() if process_count is None else process_count
  per = -(-len(items) // n)
  return list(items[i * per:(i + 1) * per])


def replicate(x: jax.Array) -> jax.Array:
  """Makes a result whole on every device (so every process can read it)."""
  placement = current()
  if placement is None:
    return x
  return jax.lax.with_sharding_constraint(x, placement.replicated())


def place_inputs(placement: Optional[Placement], batch_size: int, *arrays_B):
  """Checks the batch divides the mesh and puts [B, ...] host arrays on it."""
  if placement is None:
    return arrays_B
  placement.check_divides((batch_size,), ("batch",), "prompt batch")
  return tuple(jax.device_put(a, placement.sharding(("batch",) + (None,) * (a.ndim - 1)))
               for a in arrays_B)


def kernel_allowed(placement: Optional[Placement]) -> bool:
  """Whether custom calls without a sharding rule (the CPU matmul kernel) may run: only
  unsharded. The samplers resolve `ModelConfig.matmul` with it before tracing."""
  return placement is None or placement.mesh.size == 1


def make_placement(mesh: Optional[Mesh], rules: Optional[Rules]) -> Optional[Placement]:
  if mesh is None:
    if rules is not None:
      raise ValueError("sharding rules were given without a mesh")
    return None
  if not isinstance(mesh, Mesh):
    raise ValueError(f"mesh must be a jax.sharding.Mesh (sj.sharding.make_mesh((2, 4))) or "
                     f"None, got {type(mesh).__name__} {mesh!r:.60}")
  return Placement(mesh, tuple(tuple(r) for r in (rules or DEFAULT_RULES)))
