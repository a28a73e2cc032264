"""Training data: batches resume exactly, splits are stable, packing, and the corpus cache."""
import json
import os

import numpy as np
import pytest

from specjax.models.tokenizer import Tokenizer
from specjax.training import data
from specjax.training.data import Batches
from specjax.training.sources import Doc

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")


@pytest.fixture(scope="module")
def tiny():
  with open(os.path.join(DATA, "tiny_bpe.json")) as f:
    return Tokenizer.from_gguf_metadata(json.load(f))


# --- Batches ----------------------------------------------------------------------------------
def _rows(batches, k):
  return [next(batches) for _ in range(k)]


@pytest.mark.parametrize("stop", [1, 2, 3, 5])  # mid-epoch, at, across and past epoch ends
def test_batches_restore_continues_exactly(stop):
  tokens_NT = np.arange(30, dtype=np.int32).reshape(10, 3)
  ref = _rows(Batches(tokens_NT, 4, seed=7), 10)
  first = Batches(tokens_NT, 4, seed=7)
  _rows(first, stop)
  state = json.loads(json.dumps(first.state()))  # plain ints survive a JSON round trip
  resumed = Batches(tokens_NT, 4, seed=7)
  resumed.restore(state)
  for want, got in zip(ref[stop:], _rows(resumed, 10 - stop)):
    np.testing.assert_array_equal(want, got)


def test_batches_visit_every_row_once_per_epoch():
  tokens_NT = np.arange(10, dtype=np.int32)[:, None]
  batches = Batches(tokens_NT, 4, seed=3)
  order = np.concatenate(_rows(batches, 10))[:, 0]  # 40 rows: 4 epochs, batches straddle
  for e in range(4):
    np.testing.assert_array_equal(order[10 * e:10 * (e + 1)],
                                  np.random.default_rng([3, e]).permutation(10))
  assert batches.state() == {"epoch": 4, "index": 0}


@pytest.mark.parametrize("n, batch_size", [(10, 11), (10, 0), (0, 1)])
def test_batches_bad_sizes_raise(n, batch_size):
  with pytest.raises(ValueError, match="Batches"):
    Batches(np.zeros((n, 3), np.int32), batch_size, seed=0)


# --- split, pack, prompts ---------------------------------------------------------------------
def test_split_docs_is_stable_and_disjoint():
  docs = [Doc(f"pkg/mod{i}.py", "x", "code") for i in range(500)]
  train, held = data.split_docs(docs, 0.05)
  train2, held2 = data.split_docs(docs[::-1], 0.05)
  assert {d.name for d in held} == {d.name for d in held2} and held
  assert {d.name for d in train} == {d.name for d in train2}
  assert not {d.name for d in train} & {d.name for d in held}
  assert len(train) + len(held) == 500 and 10 < len(held) < 45
  assert len(data.split_docs(docs[:2], 0.02)[1]) == 1  # at least one held out


def test_pack_concatenates_docs_and_eos(tiny):
  docs = [Doc(str(i), t, "prose") for i, t in enumerate(["the cat sat", "on a mat\n", "hi"])]
  stream = sum((tiny.encode(d.text) + [tiny.eos_id] for d in docs), [])
  rows_NT = data.pack(docs, tiny, 5, tiny.eos_id)
  assert rows_NT.dtype == np.int32 and rows_NT.shape == (len(stream) // 5, 5)
  np.testing.assert_array_equal(rows_NT.ravel(), stream[:rows_NT.size])


def test_heldout_prompts_are_deterministic_slices(tiny):
  docs = [Doc("a", "def f(x):\n  return x + 1\n" * 5, "code"), Doc("b", "short", "code")]
  ids = tiny.encode(docs[0].text)
  prompts = data.heldout_prompts(docs, tiny, 6, 12, seed=1)
  assert prompts == data.heldout_prompts(docs, tiny, 6, 12, seed=1)
  for p in prompts:  # "short" has < 12 tokens, so every prompt comes from doc a
    assert len(p) == 12 and any(ids[i:i + 12] == p for i in range(len(ids)))
  with pytest.raises(ValueError):
    data.heldout_prompts(docs, tiny, 1, 10_000)


# --- build_corpus -----------------------------------------------------------------------------
def test_build_corpus_shapes_and_cache(tiny, tmp_path, monkeypatch):
  args = (["code", "aclsum"], tiny, 64, tiny.eos_id)
  corpus = data.build_corpus(*args, cache_dir=str(tmp_path), limit_bytes=100_000)
  assert corpus.train_NT.dtype == np.int32 and corpus.train_NT.shape[1] == 64
  assert corpus.heldout_NT.dtype == np.int32 and corpus.heldout_NT.shape[1] == 64
  assert len(corpus.train_NT) > len(corpus.heldout_NT) > 0
  assert {d.source for d in corpus.heldout_docs} == {"code", "aclsum"}
  stats = corpus.stats.values()  # one stream per split, cut once: < 1 row is lost
  assert sum(s["train_tokens"] for s in stats) // 64 == len(corpus.train_NT)
  assert sum(s["heldout_tokens"] for s in stats) // 64 == len(corpus.heldout_NT)
  monkeypatch.setattr(data, "eval_filter", None)  # a cache hit never builds the filter
  again = data.build_corpus(*args, cache_dir=str(tmp_path), limit_bytes=100_000)
  np.testing.assert_array_equal(corpus.train_NT, again.train_NT)
  np.testing.assert_array_equal(corpus.heldout_NT, again.heldout_NT)
  assert again.heldout_docs == corpus.heldout_docs and again.stats == corpus.stats
