"""Self-distillation data: the target's own replies to chat prompts, in resumable shards.

  WORKDIR/run_config.json     what the shards are made of (a different one is refused)
  WORKDIR/shard-00000.npz ... one shard per `shard_prompts` prompts and sampling: shard i
                              answers prompt chunk i // S under samplings[i % S], so every
                              prefix of shards mixes greedy and sampled replies
Each shard is generated in one batched `sj.generate` call (sharded over a mesh when one is
given), keyed by `fold_in(key(seed), i)`, and written whole (to a temporary name, then renamed):
a stopped run resumes at the first missing shard and produces the same shards as one that never
stopped. `target_tokens` only says where to stop, so raising it extends a finished run.

Features are not stored: the trainer recomputes the target's hidden states (3 layers x D floats
per token would be 7 kB/token in float32, 14 GB for 2M tokens; the forward that recomputes them
costs about what one training step of the draft does, see experiments/train.py's notes).

`ReplyBatches` reads the shards back through Grain (`grain.MapDataset`: a per-epoch shuffle,
fixed-length windows, batches) with a checkpointable position.
"""
import dataclasses
import glob
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import grain
import jax
import numpy as np

from specjax.checks import as_int
from specjax.decoding.autoregressive import generate
from specjax.decoding.sampling import Sampling
from specjax.models.model import Model
from specjax.training.data import encode_texts
from specjax.training.prompts import ChatPrompt
from specjax.workdir import Progress, claim_workdir, write_json

SHARD_GLOB = "shard-*.npz"
PROMPTS_FILE = "prompts.json"  # written by experiments/make_replies.py: counts, held-out prompts


@dataclasses.dataclass(frozen=True)
class ReplyConfig:
  samplings: Tuple[Tuple[str, Sampling], ...] = (("greedy", Sampling(0.0)),
                                                 ("nucleus", Sampling(0.8, 0, 0.95)))
  shard_prompts: int = 32        # prompts per shard: one batched generate call
  max_prompt_tokens: int = 384   # longer prompts are skipped
  max_new_tokens: int = 256
  pad_multiple: int = 64         # prompt widths compiled: multiples of this
  seed: int = 0

  def __post_init__(self):
    if not self.samplings or len({n for n, _ in self.samplings}) != len(self.samplings):
      raise ValueError(f"samplings: want distinct (name, Sampling) pairs, got {self.samplings}")
    for name, v in (("shard_prompts", self.shard_prompts), ("max_prompt_tokens",
                    self.max_prompt_tokens), ("max_new_tokens", self.max_new_tokens)):
      if v < 1:
        raise ValueError(f"ReplyConfig.{name} must be >= 1, got {v}")


def shard_path(workdir: str, i: int) -> str:
  return os.path.join(workdir, f"shard-{i:05d}.npz")


def _save(path: str, arrays: Dict[str, np.ndarray], meta: Dict) -> None:
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "wb") as f:
    np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
  os.replace(tmp, path)


def read_shard(path: str) -> Tuple[Dict[str, np.ndarray], Dict]:
  """(arrays, meta): tokens_N (every example's prompt + reply, concatenated), offsets_E1,
  prompt_len_E, reply_len_E; meta: ids, sampling, reply_tokens."""
  try:
    with np.load(path) as z:
      arrays = {k: z[k] for k in z.files if k != "meta"}
      meta = json.loads(z["meta"].tobytes())
  except Exception as e:  # a truncated or foreign file: name it, never half-read it
    raise ValueError(f"reply shard {path} is unreadable ({type(e).__name__}: {e}); delete it "
                     "and rerun to regenerate it") from None
  return arrays, meta


def encode_prompts(prompts: Sequence[ChatPrompt], tokenizer, max_tokens: int):
  """[(prompt, ids)] for the prompts of at most max_tokens ids, in their order."""
  ids = encode_texts(tokenizer, [p.text for p in prompts])
  return [(p, i) for p, i in zip(prompts, ids) if len(i) <= max_tokens]


def generate_replies(target: Model, prompts: Sequence[ChatPrompt], workdir: str,
                     cfg: ReplyConfig, target_tokens: int, max_shards: Optional[int] = None,
                     mesh=None, rules=None, heldout: Sequence[ChatPrompt] = (),
                     stats: Optional[Dict] = None, verbose: bool = True) -> Dict:
  """Fills WORKDIR with reply shards until they hold >= target_tokens reply tokens, the prompts
  run out or max_shards shards exist; returns a summary. WORKDIR/prompts.json records `stats`
  and the `heldout` prompts (acceptance is measured on them: `heldout_prompts`)."""
  encoded = encode_prompts(prompts, target.tokenizer, cfg.max_prompt_tokens)
  if not encoded:
    raise ValueError(f"no prompt has <= {cfg.max_prompt_tokens} tokens")
  claim_workdir(workdir, dict(target=target.name, config=dataclasses.asdict(cfg),
                              prompts=[p.id for p, _ in encoded]))
  if jax.process_index() == 0:
    write_json(os.path.join(workdir, PROMPTS_FILE),
               dict(stats=stats or {}, heldout=[dataclasses.asdict(p) for p in heldout]))
  S, P = len(cfg.samplings), cfg.shard_prompts
  total = -(-len(encoded) // P) * S
  limit = total if max_shards is None else min(total, max_shards)
  key = jax.random.key(cfg.seed)
  done, made = 0, 0
  bar = Progress(target_tokens) if verbose else None
  i = 0
  for i in range(limit):
    if done >= target_tokens:
      break
    path = shard_path(workdir, i)
    if not os.path.exists(path):
      name, sampling = cfg.samplings[i % S]
      chunk = encoded[(i // S) * P:(i // S + 1) * P]
      out = generate(target, [ids for _, ids in chunk], max_new_tokens=cfg.max_new_tokens,
                     sampling=sampling, key=jax.random.fold_in(key, i), mesh=mesh, rules=rules,
                     pad_multiple=cfg.pad_multiple)
      tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
      rows = [np.asarray(ids + tokens[b, :lengths[b]].tolist(), np.int32)
              for b, (_, ids) in enumerate(chunk)]
      _save(path, dict(tokens_N=np.concatenate(rows),
                       offsets_E1=np.cumsum([0] + [len(r) for r in rows]).astype(np.int64),
                       prompt_len_E=np.array([len(ids) for _, ids in chunk], np.int32),
                       reply_len_E=lengths.astype(np.int32)),
            dict(ids=[p.id for p, _ in chunk], sampling=name, reply_tokens=int(lengths.sum())))
      made += 1
    done += read_shard(path)[1]["reply_tokens"]
    if bar:
      bar.update(min(done, target_tokens), shard=i)
  if bar:
    bar.close()
  shards = len(glob.glob(os.path.join(workdir, SHARD_GLOB)))
  return dict(shards=shards, made=made, reply_tokens=done, prompts=len(encoded),
              shards_possible=total, complete=done >= target_tokens or shards >= total)


# --- reading back ---------------------------------------------------------------------------
def heldout_prompts(workdir: str, tokenizer, n: int, max_tokens: int) -> Dict[str, List[List[int]]]:
  """{"code": ids, "text": ids}: up to n held-out prompts of each group (code_* kinds, the
  rest) of at most max_tokens ids: requests no shard answers, for acceptance."""
  path = os.path.join(workdir, PROMPTS_FILE)
  if not os.path.exists(path):
    raise ValueError(f"{path} is missing: experiments/make_replies.py writes it")
  with open(path) as f:
    held = [ChatPrompt(**p) for p in json.load(f)["heldout"]]
  out = {}
  for group in ("code", "text"):
    ps = [p for p in held if p.kind.startswith("code_") == (group == "code")]
    ids = [i for _, i in encode_prompts(ps, tokenizer, max_tokens)][:n]
    if ids:
      out[group] = ids
  if not out:
    raise ValueError(f"{path}: no held-out prompt has <= {max_tokens} tokens")
  return out


def with_context(prompts: Sequence[Sequence[int]], examples: Sequence["Example"],
                 n: int) -> List[List[int]]:
  """Each prompt after `n` whole exchanges (prompt + reply) of `examples` as one conversation,
  as `joined_window` joins them for training: prompt i after examples i*n .. i*n + n - 1.
  Long contexts for acceptance, from held-out prompts."""
  n = as_int("context exchanges", n, 0)
  if n * len(prompts) > len(examples):
    raise ValueError(f"{len(prompts)} prompts x {n} exchanges of context need "
                     f"{n * len(prompts)} examples; {len(examples)} given")
  return [[int(t) for e in examples[i * n:(i + 1) * n] for t in e.tokens] + list(p)
          for i, p in enumerate(prompts)]


@dataclasses.dataclass(frozen=True)
class Example:
  tokens: np.ndarray  # int32, prompt then reply
  prompt_len: int
  sampling: str


def load_examples(workdir: str, samplings: Optional[Sequence[str]] = None,
                  max_shards: Optional[int] = None) -> List[Example]:
  """Every example of the shards in WORKDIR (its first `max_shards`, all when None), in shard
  order (optionally of some samplings). Fewer shards than `max_shards` is an error: a run
  that names a prefix of the data gets exactly that prefix."""
  paths = sorted(glob.glob(os.path.join(workdir, SHARD_GLOB)))
  if not paths:
    raise ValueError(f"no reply shards ({SHARD_GLOB}) in {workdir}: run "
                            "`python -m experiments.make_replies` first")
  if max_shards is not None:
    max_shards = as_int("max_shards", max_shards, 1)
    if paths[max_shards - 1:max_shards] != [shard_path(workdir, max_shards - 1)]:
      raise ValueError(f"max_shards={max_shards}, but {workdir} holds {len(paths)} shards "
                       f"(shard {max_shards - 1} missing): generate more with "
                       "`python -m experiments.make_replies` or lower max_shards")
    paths = paths[:max_shards]
  out = []
  for path in paths:
    a, meta = read_shard(path)
    if samplings is not None and meta["sampling"] not in samplings:
      continue
    off = a["offsets_E1"]
    out += [Example(a["tokens_N"][off[e]:off[e + 1]], int(a["prompt_len_E"][e]), meta["sampling"])
            for e in range(len(off) - 1)]
  return out


def window(example: Example, seq_len: int, pad_id: int = 0) -> Dict[str, np.ndarray]:
  """{tokens_T, mask_T}: the example cut to seq_len (a long prompt loses its start first) and
  padded; mask_T marks the reply tokens, the positions a draft is trained to predict."""
  return joined_window([example], seq_len, pad_id)


def joined_window(examples: Sequence[Example], seq_len: int,
                  pad_id: int = 0) -> Dict[str, np.ndarray]:
  """`window` of examples placed one after another, as one conversation: the earlier
  exchanges are the last one's context (long contexts, as a 1-shot prompt gives, that single
  replies rarely reach). The start is cut first, but never past the last prompt's final
  token; mask_T marks the reply tokens of every exchange in the window. The draft's labels
  are the target's distributions recomputed on the joined window, so they stay the target's.
  """
  tokens = np.concatenate([e.tokens for e in examples])
  mask = np.zeros(len(tokens), bool)
  off = 0
  for e in examples:
    mask[off + e.prompt_len:off + len(e.tokens)] = True
    off += len(e.tokens)
  last_reply = len(tokens) - len(examples[-1].tokens) + examples[-1].prompt_len
  start = max(0, min(last_reply - 1, len(tokens) - seq_len))
  toks = tokens[start:start + seq_len]
  tokens_T = np.full(seq_len, pad_id, np.int32)
  tokens_T[:len(toks)] = toks
  mask_T = np.zeros(seq_len, bool)
  mask_T[:len(toks)] = mask[start:start + seq_len]
  return dict(tokens_T=tokens_T, mask_T=mask_T)


class ReplyBatches:
  """Endless {tokens_BT, mask_BT} batches of reply windows through a Grain pipeline: shuffled
  anew each epoch (by `seed`), cut to `seq_len`, batched. `join` > 1: each window joins that
  many consecutive (shuffled) examples as one conversation (`joined_window`).
  `state()` / `restore(state)` carry the position through a checkpoint: a resumed run sees
  the same batches."""

  def __init__(self, examples: Sequence[Example], seq_len: int, batch_size: int, seed: int,
               pad_id: int = 0, join: int = 1):
    join = as_int("ReplyBatches join", join, 1)
    if not 0 < batch_size * join <= len(examples):
      raise ValueError(f"ReplyBatches: batch_size {batch_size} x join {join} must be in "
                       f"[1, {len(examples)}] (the example count)")
    ds = grain.MapDataset.source(list(examples)).shuffle(seed=seed).repeat(None)
    if join == 1:
      ds = ds.map(lambda ex: window(ex, seq_len, pad_id))
    else:
      ds = (ds.batch(join, drop_remainder=True, batch_fn=list)
            .map(lambda exs: joined_window(exs, seq_len, pad_id)))
    self.dataset = ds.batch(batch_size, drop_remainder=True)
    self.iterator = iter(self.dataset)

  def state(self) -> Dict:
    return dict(self.iterator.get_state())

  def restore(self, state: Dict) -> None:
    self.iterator.set_state(state)

  def __iter__(self):
    return self

  def __next__(self) -> Dict[str, np.ndarray]:
    b = next(self.iterator)
    return dict(tokens_BT=b["tokens_T"], mask_BT=b["mask_T"])
