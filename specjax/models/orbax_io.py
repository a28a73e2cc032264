"""specjax's own checkpoints (orbax): a `Model` (params, config, tokenizer) in one directory.

Layout:
  DIR/specjax_model.json      {"format", "version", "config", "eos_id", "name", "checksums"}
  DIR/specjax_tokenizer.json  `Tokenizer.to_json()` (absent when the model has none)
  DIR/params/                 orbax StandardCheckpointer (OCDBT) tree of the params

A checkpoint may be *derived* from a base model that loads by name (e.g. a
draft made of SmolLM2's first layers plus a trained adapter): the top-level
params equal to the base's are not stored, only listed under "base" in the
description, and are taken from `sj.load(base name)` on restore. That is what
keeps a shipped self-draft a few MB instead of a copy of the target's layers.

"checksums" holds one digest per stored tensor (models/integrity.py: orbax keeps none);
restore compares them with the tensors as read and names the first that differs, and refuses
NaN or inf parameters (save too), unless `allow_nonfinite=True`.

The params are restored against the shapes that `config` implies (never "as
saved"), so a checkpoint whose arrays do not fit its config fails with the
tensor's name instead of producing a model that breaks later inside jit.

Versions ("version" in the description): save writes VERSION; restore reads
every version in `_STORED_NAMES`, renaming what an older one stored under
another top-level name as it reads (nothing on disk is rewritten):
  1  the untied output head was "lm_head_DV" (the shipped smollm2-135m-draft)
  2  it is "lm_head_DU": the array is [D, U] (U = sub_vocab ids, else V)
  3  "checksums" (required from 3 on; versions 1 and 2 load with a warning that they cannot
     be verified)
The rename also applies to the names a derived checkpoint lists under "base".
"""
import functools
import json
import logging
import os
from typing import Any, Callable, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from specjax.models import integrity
from specjax.models.config import ModelConfig
from specjax.models.model import Model, init_params
from specjax.models.tokenizer import Tokenizer

MODEL_FILE = "specjax_model.json"
TOKENIZER_FILE = "specjax_tokenizer.json"
PARAMS_DIR = "params"
_FORMAT = "specjax-checkpoint"
VERSION = 3
# {version: {current top-level param name: the name that version stored it under}}
_STORED_NAMES = {1: {"lm_head_DU": "lm_head_DV"}, 2: {}, 3: {}}
_CHECKSUMS_FROM = 3


def is_checkpoint(path: str) -> bool:
  return os.path.isfile(os.path.join(os.fspath(path), MODEL_FILE))


def _from_base(model: Model, base: Model):
  """Top-level param groups of `model` equal (value and shape) to the same groups of `base`."""
  same = lambda a, b: a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
  return sorted(n for n, v in model.params.items() if n in base.params and
                jax.tree.structure(v) == jax.tree.structure(base.params[n]) and
                all(same(a, b) for a, b in zip(jax.tree.leaves(v),
                                               jax.tree.leaves(base.params[n]))))


def save_checkpoint(model: Model, path: str, base: Optional[Tuple[str, Model]] = None,
                    allow_nonfinite: bool = False) -> None:
  """Writes `model` to the directory `path` (created; an older checkpoint there is replaced).

  `base=(name, base_model)`: store only the params that differ from `base_model`'s
  (which `sj.load(name)` must give back); the rest are read from it on restore.
  NaN or inf params are refused (nothing is written) unless `allow_nonfinite`.
  """
  path = os.path.abspath(os.fspath(path))  # orbax wants absolute paths
  if not allow_nonfinite:
    integrity.check_finite(model.params, f"{path}: refusing to save {model.name!r}")
  os.makedirs(path, exist_ok=True)
  if is_checkpoint(path):  # an interrupted save must not leave the old description behind
    os.remove(os.path.join(path, MODEL_FILE))
  meta = {"format": _FORMAT, "version": VERSION, "config": model.config.to_dict(),
          "eos_id": model.eos_id, "name": model.name}
  params = model.params
  shared = _from_base(model, base[1]) if base is not None else []
  if shared:
    meta["base"] = {"name": base[0], "params": shared}
    params = {n: v for n, v in params.items() if n not in shared}
  else:
    base = None
  params = jax.tree.map(jax.numpy.asarray, params)
  meta["checksums"] = integrity.digests(params)
  ckptr = ocp.StandardCheckpointer()
  try:
    ckptr.save(os.path.join(path, PARAMS_DIR), params, force=True)
    ckptr.wait_until_finished()  # saving is async: the files must be complete on return
  finally:
    ckptr.close()
  tok_path = os.path.join(path, TOKENIZER_FILE)
  if model.tokenizer is not None and (base is None or base[1].tokenizer is None):
    with open(tok_path, "w") as f:
      f.write(model.tokenizer.to_json())
  elif os.path.exists(tok_path):
    os.remove(tok_path)
  # Written last: a directory with this file holds a complete checkpoint.
  with open(os.path.join(path, MODEL_FILE), "w") as f:
    json.dump(meta, f, indent=2)


def _read_meta(path: str):
  file = os.path.join(path, MODEL_FILE)
  try:
    with open(file) as f:
      meta = json.load(f)
    if meta.get("format") != _FORMAT:
      raise ValueError(f"format is {meta.get('format')!r}, expected {_FORMAT!r}")
    if meta.get("version") not in _STORED_NAMES:
      raise ValueError(f"version is {meta.get('version')!r}; this specjax reads versions "
                       f"{sorted(_STORED_NAMES)}")
    return meta, ModelConfig.from_dict(meta["config"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{file}: not a valid specjax checkpoint description ({e})") from e


def _check_files(params_dir: str) -> None:
  """Catches deleted or half-copied checkpoints before orbax, whose errors there are obscure."""
  meta_file = os.path.join(params_dir, "_METADATA")
  try:
    with open(meta_file) as f:
      use_ocdbt = json.load(f).get("use_ocdbt", True)
  except (OSError, ValueError, AttributeError) as e:
    raise ValueError(f"{meta_file}: cannot read the orbax tree metadata ({e})") from e
  names = os.listdir(params_dir)
  if use_ocdbt and ("manifest.ocdbt" not in names
                    or not any(n.startswith("ocdbt.process_") for n in names)):
    raise ValueError(f"{params_dir}: incomplete orbax checkpoint (no manifest.ocdbt or "
                     "ocdbt.process_* array data)")


def _check_tree(params_dir: str, ckptr, abstract) -> None:
  """Names the first missing, extra or mis-shaped tensor (orbax's own errors do not)."""
  try:
    item = ckptr.metadata(params_dir).item_metadata
  except Exception as e:
    raise ValueError(f"{params_dir}: cannot read the orbax checkpoint ({e})") from e
  if item is None:  # orbax logs a warning and returns None on a corrupt manifest
    raise ValueError(f"{params_dir}: cannot read the orbax checkpoint's array metadata "
                     "(corrupt manifest.ocdbt or _sharding?)")
  stored = item.tree
  name = integrity.leaf_name
  want = {name(kp): x for kp, x in jax.tree_util.tree_leaves_with_path(abstract)}
  have = {name(kp): x for kp, x in jax.tree_util.tree_leaves_with_path(
      stored, is_leaf=lambda x: hasattr(x, "shape"))}
  for k in sorted(want):
    if k not in have:
      raise ValueError(f"{params_dir}: missing tensor {k}")
    if tuple(have[k].shape) != tuple(want[k].shape):
      raise ValueError(f"{params_dir}: tensor {k} has shape {tuple(have[k].shape)}, the config "
                       f"implies {tuple(want[k].shape)}")
  extra = sorted(set(have) - set(want))
  if extra:
    raise ValueError(f"{params_dir}: unexpected tensor {extra[0]} (not in the config's model)")


def _verify(params_dir: str, meta: dict, params, allow_nonfinite: bool) -> None:
  """The stored tensors (as read, before any cast) against the description's checksums."""
  if "checksums" in meta:
    if not isinstance(meta["checksums"], dict):
      raise ValueError(f"{params_dir}: the description's 'checksums' is not a mapping")
    integrity.check_digests(params, meta["checksums"], params_dir)
  elif meta["version"] >= _CHECKSUMS_FROM:
    raise ValueError(f"{params_dir}: the description (version {meta['version']}) lacks the "
                     "'checksums' field; the checkpoint cannot be verified")
  else:
    logging.warning("%s: a version %s checkpoint has no checksums; loaded unverified",
                    params_dir, meta["version"])
  if not allow_nonfinite:
    integrity.check_finite(params, params_dir)


def restore_checkpoint(path: str, dtype: Optional[str] = None, sharding: Any = None,
                       load_base: Optional[Callable[..., Model]] = None,
                       allow_nonfinite: bool = False) -> Model:
  """The `Model` saved at `path`.

  `dtype`: cast the params (and config) to this dtype; default: as saved.
  `load_base(name, dtype=...)`: loads the base model of a derived checkpoint
  (one that stores only what differs from a named model); `sj.load` passes
  itself (this module imports nothing above the models).
  `sharding`: one `jax.sharding.Sharding` for every param, or a pytree of them
  matching the params; default: the first device.
  Every stored tensor is checked against its checksum; NaN or inf params are refused unless
  `allow_nonfinite`.
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.isdir(path):
    raise ValueError(f"{path}: no such checkpoint directory")
  meta, cfg = _read_meta(path)
  stored_name = _STORED_NAMES[meta["version"]]  # migration: current name -> name on disk
  current_name = {old: new for new, old in stored_name.items()}
  params_dir = os.path.join(path, PARAMS_DIR)
  abstract = jax.eval_shape(functools.partial(init_params, cfg), jax.random.key(0))
  shared, base = {}, None
  if "base" in meta:  # a derived checkpoint: the base's own groups come from the base
    if load_base is None:
      raise ValueError(f"{path}: a checkpoint derived from {meta['base']['name']!r}; load it "
                       f"with sj.load, which also loads its base")
    # In the dtype asked for: a draft stored in bfloat16 (half the bytes) and loaded in
    # float32 takes the base's own float32 arrays, not a bfloat16 round trip of them.
    base = load_base(meta["base"]["name"], dtype=dtype or cfg.dtype)
    names = [current_name.get(n, n) for n in meta["base"]["params"]]
    shared = {n: base.params[n] for n in names}
    abstract = {n: v for n, v in abstract.items() if n not in shared}
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  if isinstance(sharding, jax.sharding.Sharding):
    sharding = jax.tree.map(lambda _: sharding, abstract)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          abstract, sharding)
  abstract = {stored_name.get(n, n): v for n, v in abstract.items()}  # as this version stored
  _check_files(params_dir)
  ckptr = ocp.StandardCheckpointer()
  try:
    _check_tree(params_dir, ckptr, abstract)
    try:
      params = ckptr.restore(params_dir, abstract)
    except Exception as e:
      raise ValueError(f"{params_dir}: cannot restore the params ({type(e).__name__}: {e})") from e
  finally:
    ckptr.close()
  _verify(params_dir, meta, params, allow_nonfinite)
  params = {**shared, **{current_name.get(n, n): v for n, v in params.items()}}
  if dtype is not None and dtype != cfg.dtype:  # floats only: vocab_ids_U stays int32
    cfg = cfg.replace(dtype=dtype)
    params = jax.tree.map(lambda x: x.astype(cfg.jnp_dtype)
                          if jax.numpy.issubdtype(x.dtype, jax.numpy.floating) else x, params)
  tok = base.tokenizer if base is not None else None
  tok_path = os.path.join(path, TOKENIZER_FILE)
  if os.path.exists(tok_path):
    with open(tok_path) as f:
      tok = Tokenizer.from_json(f.read(), source=tok_path)
  return Model(cfg, params, tokenizer=tok, eos_id=meta.get("eos_id"),
               name=meta.get("name") or os.path.basename(path))
