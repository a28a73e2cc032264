"""Training data: split, pack and cache the corpus; a resumable batch iterator.

`build_corpus` takes the sources (`stdlib_code`, `debian_docs`, `aclsum_train` in `sources`),
drops every document sharing a word n-gram with HumanEval or ACLSum val/test (`decontam`),
holds out ~2% of each source by a hash of the document name and packs the rest into int32 rows,
cached as .npz. `Batches` walks the rows in a seeded permutation per epoch; its state is two
ints, so a checkpoint can carry it. Here `N` counts packed rows (not query heads) and `T` is the
row length.
"""
import dataclasses
import functools
import hashlib
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from specjax.models.tokenizer import Tokenizer
from specjax.training.decontam import eval_filter, stable_hash64
from specjax.training.sources import Doc, default_cache_dir, source_docs

FILTER_VERSION = 1  # bump when sources, filtering or packing change: it keys the corpus cache


# --- split, pack, cache -----------------------------------------------------------------------
def split_docs(docs: Sequence[Doc], heldout_fraction: float = 0.02) -> Tuple[List[Doc], List[Doc]]:
  """(train, heldout) by a hash of each name: the same on every machine and in every order."""
  u = [stable_hash64(d.name) / 2**64 for d in docs]  # uniform in [0, 1)
  held = {i for i, x in enumerate(u) if x < heldout_fraction}
  if not held and heldout_fraction > 0 and len(docs) >= 2:
    held = {int(np.argmin(u))}
  return ([d for i, d in enumerate(docs) if i not in held],
          [d for i, d in enumerate(docs) if i in held])


def encode_texts(tokenizer: Tokenizer, texts: List[str]) -> List[List[int]]:
  """Ids without BOS, encoded in parallel (one thread per core) by the wrapped HF tokenizer."""
  encode = getattr(tokenizer.tok, "encode_batch_fast", tokenizer.tok.encode_batch)
  return [e.ids for e in encode(texts, add_special_tokens=False)]


def _stream(docs: Sequence[Doc], tokenizer: Tokenizer, eos_id: int) -> np.ndarray:
  head = [tokenizer.bos_id] if tokenizer.add_bos and tokenizer.bos_id is not None else []
  ids = encode_texts(tokenizer, [d.text for d in docs])
  return np.concatenate([np.zeros(0, np.int32)] +
                        [np.array(head + i + [eos_id], np.int32) for i in ids])


def _rows(stream: np.ndarray, seq_len: int) -> np.ndarray:
  n = len(stream) // seq_len  # the remainder (< one row) is dropped
  return stream[:n * seq_len].reshape(n, seq_len)


def pack(docs: Sequence[Doc], tokenizer: Tokenizer, seq_len: int, eos_id: int) -> np.ndarray:
  """Each doc's ids followed by eos_id (and preceded by BOS if the tokenizer adds one), all
  concatenated and cut into rows of seq_len."""
  return _rows(_stream(docs, tokenizer, eos_id), seq_len)


@dataclasses.dataclass
class Corpus:
  train_NT: np.ndarray  # int32
  heldout_NT: np.ndarray  # int32, from documents that no train row contains
  heldout_docs: List[Doc]  # where held-out prompts come from (`heldout_prompts`)
  stats: Dict  # per source: docs, dropped (by the eval filter), train/heldout docs and tokens


def build_corpus(sources: Sequence[str], tokenizer: Tokenizer, seq_len: int, eos_id: int,
                 cache_dir: Optional[str] = None, limit_bytes: Optional[int] = None,
                 heldout_fraction: float = 0.02) -> Corpus:
  """Decontaminated, split and packed `sources`; `limit_bytes` caps each source. Cached in
  cache_dir under a hash of every argument, the tokenizer and FILTER_VERSION."""
  cache_dir = cache_dir or default_cache_dir()
  inputs = dict(sources=list(sources), seq_len=seq_len, eos_id=int(eos_id), limit=limit_bytes,
                heldout=heldout_fraction, version=FILTER_VERSION, python=sys.version_info[:2],
                tokenizer=hashlib.blake2b(tokenizer.to_json().encode()).hexdigest())
  key = hashlib.blake2b(json.dumps(inputs, sort_keys=True).encode(), digest_size=8).hexdigest()
  path = os.path.join(cache_dir, f"corpus-{key}.npz")
  if os.path.exists(path):
    with np.load(path) as z:
      meta = json.loads(z["meta"].tobytes())
      return Corpus(z["train_NT"], z["heldout_NT"], [Doc(**d) for d in meta["heldout_docs"]],
                    meta["stats"])
  filt, stats, train, heldout, heldout_docs = eval_filter(), {}, [], [], []
  for source in sources:
    docs = source_docs(source, cache_dir, limit_bytes)
    kept = [d for d in docs if not filt.contaminated(d.text)]
    tr, ho = split_docs(kept, heldout_fraction)  # per source, so each has held-out docs
    train.append(_stream(tr, tokenizer, eos_id))
    heldout.append(_stream(ho, tokenizer, eos_id))
    heldout_docs += ho
    stats[source] = dict(docs=len(docs), dropped=len(docs) - len(kept), train_docs=len(tr),
                         heldout_docs=len(ho), train_tokens=len(train[-1]),
                         heldout_tokens=len(heldout[-1]))
  corpus = Corpus(_rows(np.concatenate([np.zeros(0, np.int32)] + train), seq_len),
                  _rows(np.concatenate([np.zeros(0, np.int32)] + heldout), seq_len),
                  heldout_docs, stats)
  meta = dict(stats=stats, heldout_docs=[dataclasses.asdict(d) for d in heldout_docs])
  os.makedirs(cache_dir, exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"  # written whole, then renamed: readers never see a part
  with open(tmp, "wb") as f:
    np.savez(f, train_NT=corpus.train_NT, heldout_NT=corpus.heldout_NT,
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
  os.replace(tmp, path)
  return corpus


def heldout_prompts(docs: Sequence[Doc], tokenizer: Tokenizer, n: int, prompt_tokens: int,
                    seed: int = 0) -> List[List[int]]:
  """n prompts of exactly prompt_tokens ids, each from a uniformly drawn doc (long enough) at
  a uniformly drawn offset: text the drafter never trained on, for acceptance rates."""
  ids = [i for i in encode_texts(tokenizer, [d.text for d in docs]) if len(i) >= prompt_tokens]
  if not ids:
    raise ValueError(f"no held-out doc has {prompt_tokens} tokens")
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    doc = ids[rng.integers(len(ids))]
    start = int(rng.integers(len(doc) - prompt_tokens + 1))
    out.append(doc[start:start + prompt_tokens])
  return out


# --- batches ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)  # per live iterator: this epoch and, straddling, the next
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


class Batches:
  """Endless [batch_size, T] batches; epoch e visits the rows in the order
  default_rng([seed, e]).permutation(N), and a batch may straddle two epochs. `state()` is
  JSON-serialisable; `restore(state)` then next() continues exactly as if never stopped."""

  def __init__(self, tokens_NT: np.ndarray, batch_size: int, seed: int):
    n = len(tokens_NT)
    if n == 0:
      raise ValueError("Batches: no rows (the corpus is shorter than one sequence)")
    if not 0 < batch_size <= n:
      raise ValueError(f"Batches: batch_size {batch_size} must be in [1, {n}] (the row count)")
    self.tokens_NT, self.batch_size, self.seed = tokens_NT, batch_size, seed
    self.epoch, self.index = 0, 0  # the next row is _permutation(seed, epoch, N)[index]

  def state(self) -> Dict[str, int]:
    return dict(epoch=self.epoch, index=self.index)

  def restore(self, state: Dict[str, int]) -> None:
    if not 0 <= int(state["index"]) < len(self.tokens_NT):
      raise ValueError(f"Batches: state {state} does not fit {len(self.tokens_NT)} rows")
    self.epoch, self.index = int(state["epoch"]), int(state["index"])

  def __iter__(self):
    return self

  def __next__(self) -> np.ndarray:
    picks, need = [], self.batch_size
    while need:
      take = _permutation(self.seed, self.epoch, len(self.tokens_NT))[self.index:][:need]
      picks.append(take)
      need -= len(take)
      self.index += len(take)
      if self.index == len(self.tokens_NT):
        self.epoch, self.index = self.epoch + 1, 0
    return self.tokens_NT[np.concatenate(picks)]
