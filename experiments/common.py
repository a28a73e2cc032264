"""What every experiment main shares: how it starts (`run`), its model names, mesh flags.

A main is `common.run(main, "configs/NAME.py:PRESET")`: the flag `--config` takes a
preset file and its argument (`get_config(arg)`), fields are overridden with
`--config.FIELD=VALUE`, the multi-host flags below join the processes, and
`main(config)` runs. Measurement lives in `specjax.perf`, evaluation in `specjax.evals`.
"""
import json
from typing import Callable

from absl import app, flags
import jax
import ml_collections
from ml_collections import config_flags

import specjax as sj
from specjax import perf
from specjax.cache import enable_compilation_cache
from specjax.checks import as_float, as_int
from configs import model as model_configs


def build_model(name: str, dtype: str = "float32", seed: int = 0) -> sj.Model:
  """`random:<preset>` (configs/model.py, random weights) or anything `sj.load` takes.

  A bare preset name (`smollm2_135m`) is refused: it is one character from the
  real model's (`smollm2-135m`), so random weights are always asked for by name.
  """
  problem = _model_problem(name)
  if problem:
    raise ValueError(f"model {name!r} {problem}")
  if name.startswith("random:"):
    cfg = sj.ModelConfig.from_dict(model_configs.get_config(name.split(":", 1)[1]))
    return sj.init_model(cfg.replace(dtype=dtype), jax.random.key(seed), name=name)
  return sj.load(name, dtype=dtype)


def _model_problem(name: str, real_only: bool = False):
  """Why `build_model` refuses `name` (`real_only`: also random weights); None if it takes it."""
  presets = model_configs.PRESETS
  if real_only and (name.startswith("random:") or name in presets):
    return (f"has random weights, and random weights have no tokenizer: want real weights "
            f"(an sj.load name or path, e.g. {sorted(sj.REGISTRY)})")
  if name.startswith("random:") and name[7:] not in presets:
    return (f"names an unknown model preset {name[7:]!r}: random weights are random:<preset>, "
            f"presets {sorted(presets)}")
  if name in presets:
    return (f"is a random-weight preset: write 'random:{name}' "
            f"(real weights: {sorted(sj.REGISTRY)})")
  return None


def write_rows(cfg, rows) -> None:
  """A bench's rows as JSON at `cfg.out` (nothing when it is empty), with the target, the
  backend, the machine and the config."""
  if cfg.out:
    with open(cfg.out, "w") as f:
      json.dump(dict(target=cfg.target, backend=jax.default_backend(), machine=perf.machine(),
                     config=cfg.to_dict(), rows=rows), f, indent=1)


def sampling(cfg) -> sj.Sampling:
  """A `configs.common.sampling` sub-config as the library's `sj.Sampling`."""
  return sj.Sampling.from_config(cfg)


# ---- config checks shared by the mains: each error names its field ----
def check_ints(cfg, node: str = "", **least) -> None:
  """Each named field (of `cfg[node]` if `node`) an integer, not a bool, >= its least."""
  sub, at = (cfg[node], f"{node}.") if node else (cfg, "")
  for field, lo in least.items():
    as_int(f"config.{at}{field}", sub[field], lo)


def check_floats(cfg, node: str = "", positive=(), **ranges) -> None:
  """Each named field a finite number, not a bool: those in `positive` > 0, the others in
  their (lo, hi) range (None: unbounded)."""
  sub, at = (cfg[node], f"{node}.") if node else (cfg, "")
  for field in positive:
    as_float(f"config.{at}{field}", sub[field], 0, lo_open=True)
  for field, (lo, hi) in ranges.items():
    as_float(f"config.{at}{field}", sub[field], lo, hi)


def check_drafter(cfg, field: str = "draft") -> None:
  """`cfg[field]` (or each of a tuple): '' (none), 'lookup[:N]', 'self:N' with an integer
  N >= 1, or a model name (checked when loaded)."""
  v = cfg[field]
  for name in v if isinstance(v, (list, tuple)) else [v]:
    kind, _, arg = name.partition(":")
    if kind in ("lookup", "self") and (arg or kind == "self") and \
        not (arg.isdigit() and int(arg) >= 1):
      raise ValueError(f"config.{field}: {name!r}: {kind}:N needs an integer N >= 1")


def check_names(cfg, field: str, what: str = "names") -> None:
  """`cfg[field]` a non-empty tuple (or list) of `what` without duplicates."""
  v = cfg[field]
  if not isinstance(v, (list, tuple)) or not v:
    raise ValueError(f"config.{field} must be a non-empty tuple of {what}, got {v!r}")
  if len(set(v)) != len(v):
    raise ValueError(f"config.{field} has duplicates: {list(v)}")


def check_model(cfg, field: str, real_only: bool = False) -> None:
  """`cfg[field]` (or each of a tuple) a name `build_model` takes; `real_only`: not random."""
  v = cfg[field]
  for name in v if isinstance(v, (list, tuple)) else [v]:
    problem = _model_problem(name, real_only)
    if problem:
      raise ValueError(f"config.{field} = {name!r} {problem}")


def check_sampling(cfg, field: str = "sampling") -> sj.Sampling:
  """`cfg[field]` (a dotted path: `eval.sampling`) as an `sj.Sampling`; a bad one is refused
  naming `config.<field>`."""
  node = cfg
  for part in field.split("."):
    node = node[part]
  try:
    return sampling(node)
  except ValueError as e:
    raise ValueError(f"config.{field}: {e}") from None


# ---- multi-host: flags shared by every experiment main ----
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for jax.distributed (None: single process, or "
                    "auto-detected on TPU VMs with --distributed)")
flags.DEFINE_integer("num_processes", None, "number of processes (jax.distributed)")
flags.DEFINE_integer("process_id", None, "this process's index (jax.distributed)")
flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() with no arguments "
                  "(TPU VMs, Slurm, Open MPI detect the cluster themselves)")
flags.DEFINE_integer("cpu_devices", None, "simulated CPU devices per process (CPU runs)",
                     lower_bound=1)
flags.DEFINE_string("compilation_cache", "default",
                    "JAX's persistent compilation cache: 'default' (<specjax cache>/jax, "
                    "$SPECJAX_CACHE or ~/.cache/specjax), a directory, or 'off'")


def init_distributed() -> None:
  """Joins the processes when the flags ask for it; prints who is who."""
  F = flags.FLAGS
  if F.coordinator_address or F.distributed:
    sj.sharding.initialize_distributed(F.coordinator_address, F.num_processes, F.process_id,
                                       cpu_devices=F.cpu_devices)
  elif F.cpu_devices:
    jax.config.update("jax_num_cpu_devices", F.cpu_devices)
  if jax.process_count() > 1:
    print(f"process {jax.process_index()}/{jax.process_count()}: "
          f"{jax.local_device_count()} local of {jax.device_count()} devices", flush=True)


def mesh_from_config(cfg):
  """`cfg.mesh_shape` (e.g. (2, 4), or (-1, 4)) -> a Mesh over all devices; () -> None."""
  shape = tuple(cfg.get("mesh_shape") or ())
  try:
    return sj.sharding.make_mesh(shape) if shape else None
  except ValueError as e:
    raise ValueError(f"config.mesh_shape: {e}") from None


def rules_from_name(name: str):
  table = {"default": sj.sharding.DEFAULT_RULES, "replicated": sj.sharding.REPLICATED_RULES}
  if name not in table:
    raise ValueError(f"unknown sharding rules {name!r}; choose from {sorted(table)}")
  return table[name]


def workdir_flag(help_text: str) -> flags.FlagHolder:
  """A main's --workdir flag. Defined once per process: importing two mains (a test does)
  shares it instead of failing with DuplicateFlagError."""
  if "workdir" in flags.FLAGS:
    return flags.FlagHolder(flags.FLAGS, flags.FLAGS["workdir"])
  return flags.DEFINE_string("workdir", None, help_text)


def run(main: Callable[[ml_collections.ConfigDict], None], default_config: str) -> None:
  """Starts an experiment main: `--config` (default `default_config`), multi-host, main(config).

  Flags of the main's own (say `--workdir`) are defined before this call.
  """
  config = config_flags.DEFINE_config_file(
      "config", default_config, "preset FILE.py:ARG; override fields with --config.FIELD=VALUE")

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}: settings go in --config.FIELD=...")
    init_distributed()
    cache = flags.FLAGS.compilation_cache
    if cache != "off":
      enable_compilation_cache("" if cache == "default" else cache)
    main(config.value)

  app.run(_main)
