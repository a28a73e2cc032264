"""The sampling engine that ArS and SpS share; each loop supplies only its body.

Host side: `prepare` checks every input before anything compiles and places the
batch; `finish` decodes. Traced side, one state for both loops (`LoopState`):
per row the committed tokens `seq_BS[:n_B]` (prompt + output), whether the
row is done, the target's KV cache holding the first n_B - 1 committed tokens
(the newest is fed by the next call), the drafter's state and the statistics.
An iteration of either loop ends in `advance`: it emits a *block* per row (the
accepted drafts, then one sampled token: ArS's blocks have no drafts), cuts it
at the token budget and after a stop id (`emit_block`), writes it, rolls the
caches back per row in O(1) and counts. `run` is the while_loop and the output.

Each sampler is two jitted programs, its prefill (-> `LoopState`) and its
loop, chained by `two_phases` without waiting in between. Inside
`record_phases()` it waits after the prefill and logs both phases' seconds,
so that a time accounting measures them (`perf.timing.timed_generation`);
inside `compile_only()` it compiles both and runs neither.
"""
import contextlib
import contextvars
import dataclasses
import time
import warnings
from typing import Any, Callable, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from specjax import sharding
from specjax.decoding import inputs
from specjax.decoding.adaptive import AdaptiveK, init_counts
from specjax.decoding.sampling import Sampling, TracedSampling
from specjax.decoding.stats import Stats, init_stats
from specjax.models.config import ModelConfig
from specjax.models.kv_cache import KVCache
from specjax.models.model import Model, check_params, param_logical_axes


@struct.dataclass
class GenerateOutput:
  """A pytree (texts static), so that `jax.block_until_ready(out)` waits for every array."""
  tokens: jax.Array   # int32[B, max_new_tokens]; after a row's end: pad_id (0)
  lengths: jax.Array  # int32[B]; new tokens per row, its EOS included
  stats: Stats
  texts: Optional[list] = struct.field(pytree_node=False, default=None)  # decoded rows

  def row(self, b: int) -> list:
    return [int(t) for t in self.tokens[b, : int(self.lengths[b])]]


@dataclasses.dataclass(frozen=True)
class Options:  # static options of both loops: one compilation per distinct value
  config: ModelConfig
  max_new_tokens: int
  capacity: int
  placement: Optional[sharding.Placement] = None
  k: int = 0  # draft tokens per iteration: blocks of up to k + 1 tokens (ArS: 0)
  adaptive: Optional[AdaptiveK] = None  # SpS: per-row draft lengths up to k (None: always k)


# Stop ids travel as an int32 array padded with -1 (no token) to a multiple of this many
# slots, so that no stop id, one or a few (Table 1's tasks, the K sweep) share a program.
STOP_SLOTS = 4


@struct.dataclass
class Knobs:
  """What the loops trace rather than compile in: the sampling values and the stop ids.

  Calls that differ only in these share their compiled programs, greedy or not, with or
  without top-p; top_k (a shape) and the number of stop slots stay static.
  """
  sampling: TracedSampling
  stop_ids_N: jax.Array  # int32[N]: any of them ends a row; -1 pads (N: STOP_SLOTS multiple)

  @classmethod
  def of(cls, sampling: Sampling, eos_ids: Optional[Tuple[int, ...]]) -> "Knobs":
    ids = list(eos_ids or ())
    n = max(STOP_SLOTS, -(-len(ids) // STOP_SLOTS) * STOP_SLOTS)
    return cls(sampling=sampling.traced(),
               stop_ids_N=jnp.asarray(ids + [-1] * (n - len(ids)), jnp.int32))


def prepare(model: Model, prompts, max_new_tokens, sampling, key, eos_id, mesh, rules,
            k: int = 0, max_len: Optional[int] = None, pad_multiple: int = 16):
  """Checks every input on the host (before compiling) and places the batch.

  Returns (params, prompt_BT, prompt_len_B, key, Knobs, Options). `k` > 0 reserves
  the k + 1 slots a verification call writes past the committed tokens.
  """
  check_model(model, "model")
  if not isinstance(sampling, Sampling):
    raise ValueError(f"sampling must be a specjax.Sampling, got {type(sampling).__name__}")
  max_new_tokens = inputs.as_int("max_new_tokens", max_new_tokens, 1)
  placement = sharding.make_placement(mesh, rules)
  cfg = model.config
  if not sharding.kernel_allowed(placement):
    cfg = cfg.replace(matmul="xla")
  max_len = cfg.max_len if max_len is None else max_len
  eos_id = inputs.check_eos(model.eos_id if eos_id is inputs.MODEL_EOS else eos_id,
                            cfg.vocab_size)
  ids = inputs.encode_prompts(prompts, model.tokenizer)
  prompt_BT, prompt_len_B, capacity = inputs.pack_prompts(
      ids, cfg.vocab_size, max_len, max_new_tokens, extra_slots=k + 1 if k else 0,
      pad_multiple=pad_multiple)
  longest = int(prompt_len_B.max())
  if k and longest + max_new_tokens + k > max_len:
    raise ValueError(f"prompt ({longest} tokens) + max_new_tokens ({max_new_tokens}) + k ({k}) "
                     f"= {longest + max_new_tokens + k} exceeds the cache capacity the models "
                     f"allow (max_len {max_len})")
  if key is None:
    if not sampling.greedy:
      raise ValueError("sampling with temperature > 0 needs a PRNG key: pass key=...")
    key = jax.random.key(0)
  _check_key(key)
  params = model.params
  if placement is not None:
    params = sharding.place_params(params, param_logical_axes(cfg), placement)
    prompt_BT, prompt_len_B = sharding.place_inputs(placement, len(ids), prompt_BT, prompt_len_B)
  opts = Options(cfg, int(max_new_tokens), capacity, placement, k)
  return params, prompt_BT, prompt_len_B, key, Knobs.of(sampling, eos_id), opts


def check_model(model, what: str) -> None:
  """`model` a `Model` whose params have its config's shapes (else a ValueError naming `what`)."""
  if not isinstance(model, Model):
    raise ValueError(f"{what} must be a specjax Model (sj.load(...), sj.init_model(...)), got "
                     f"{type(model).__name__} {model!r:.60}")
  check_params(model.config, model.params, what)


def _check_key(key) -> None:
  typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  raw = isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32 and key.ndim == 1
  if not (typed or raw):
    raise ValueError(f"key must be a JAX PRNG key (jax.random.key(seed)) or None (greedy "
                     f"only), got {key!r:.60}")


def finish(model: Model, tokens, lengths, stats) -> GenerateOutput:
  texts = None
  if model.tokenizer is not None:
    texts = [model.tokenizer.decode(r[:n]) for r, n in zip(tokens.tolist(), lengths.tolist())]
  return GenerateOutput(tokens=tokens, lengths=lengths, stats=stats, texts=texts)


@struct.dataclass
class LoopState:
  seq_BS: jax.Array     # int32[B, S]: committed tokens at their positions (stale after n_B)
  n_B: jax.Array        # int32[B]: committed tokens (prompt + output)
  done_B: jax.Array     # bool[B]: ended rows stop changing
  cache: KVCache        # the target's: the first n_B - 1 committed tokens
  draft_state: Any      # the drafter's (SpS), () for ArS
  stats: Stats
  knobs: Knobs          # the sampling values and stop ids (traced)
  # Adaptive K: per row, decayed [accepted, rejected] verified drafts (`decoding.adaptive`).
  counts_B2: Optional[jax.Array] = None


def start(prompt_BT, prompt_len_B, cache: KVCache, draft_state, knobs: Knobs,
          opts: Options) -> LoopState:
  """The state before any token is emitted: the prompts committed, nothing done."""
  B, width = prompt_BT.shape
  seq_BS = jnp.zeros((B, opts.capacity), jnp.int32).at[:, :width].set(prompt_BT)
  return LoopState(seq_BS=sharding.constrain(seq_BS, ("batch", None)), n_B=prompt_len_B,
                   done_B=jnp.zeros((B,), bool), cache=cache.rollback(prompt_len_B - 1),
                   draft_state=draft_state, stats=init_stats(B, opts.k), knobs=knobs,
                   counts_B2=init_counts(B) if opts.adaptive else None)


def emit_block(draft_BG, n_acc_B, next_B, room_B, stop_ids_N):
  """The tokens one verification emits per row, and how many.

  The block is the n_acc accepted drafts then the correction (or bonus) token,
  n_acc + 1 tokens, cut to the row's remaining budget `room_B` and after its
  first stop id (`stop_ids_N`, -1 pads). Returns (emit_BG1, n_emit_B, hit_B):
  the block (positions past n_emit hold junk, later overwritten), its emitted
  length, whether a stop id ended it.
  """
  B, k = draft_BG.shape
  j_G1 = jnp.arange(k + 1)
  draft_pad_BG1 = jnp.concatenate([draft_BG, jnp.zeros((B, 1), jnp.int32)], axis=1)
  emit_BG1 = jnp.where(j_G1 < n_acc_B[:, None], draft_pad_BG1, next_B[:, None])
  n_emit_B = jnp.minimum(n_acc_B + 1, room_B)
  is_eos_BG1 = (jnp.any(emit_BG1[..., None] == stop_ids_N, axis=-1) &
                (j_G1 < n_emit_B[:, None]))
  hit_B = jnp.any(is_eos_BG1, axis=1)
  return emit_BG1, jnp.where(hit_B, jnp.argmax(is_eos_BG1, axis=1) + 1, n_emit_B), hit_B


def advance(s: LoopState, draft_BG, n_acc_B, next_B, cache: KVCache, draft_state,
            opts: Options, draft_calls=0, count: bool = True, drafted_B=None) -> LoopState:
  """Emits each live row's block (`draft_BG[:, :n_acc]` then `next_B`) and counts it.

  `cache`: the target's after this iteration's call; it is rolled back to the
  new n_B - 1 (O(1)). `draft_state` is the drafter's, committed by the caller.
  `drafted_B`: the drafts each row put to verification (default: k; adaptive K:
  the row's length). `count=False` (ArS's first token, from the prefill) counts
  no call and no block.
  """
  M = opts.max_new_tokens
  new_B = s.stats.new_tokens_B
  emit_BG1, n_emit_B, hit_B = emit_block(draft_BG, n_acc_B, next_B, M - new_B,
                                          s.knobs.stop_ids_N)
  live_B = ~s.done_B
  n_emit_B = jnp.where(live_B, n_emit_B, 0)
  # Slots past n + n_emit are stale, so the whole block is written.
  write = lambda row_S, blk, at: jax.lax.dynamic_update_slice(row_S, blk, (at,))
  seq_BS = jax.vmap(write)(s.seq_BS, emit_BG1, s.n_B)
  n_B = s.n_B + n_emit_B
  new_B = new_B + n_emit_B
  stats = s.stats.replace(new_tokens_B=new_B)
  if count:
    stats = stats.replace(
        target_calls=stats.target_calls + 1, draft_calls=stats.draft_calls + draft_calls,
        accepted_histogram_BG=stats.accepted_histogram_BG +
        jax.nn.one_hot(n_acc_B, opts.k + 1, dtype=jnp.int32) * live_B[:, None])
    drafted_B = jnp.full_like(n_acc_B, opts.k) if drafted_B is None else drafted_B
    stats = stats.replace(drafted_B=stats.drafted_B + jnp.where(live_B, drafted_B, 0),
                          rejected_B=stats.rejected_B + (live_B & (n_acc_B < drafted_B)))
  return s.replace(seq_BS=seq_BS, n_B=n_B, done_B=s.done_B | (live_B & hit_B) | (new_B >= M),
                   cache=cache.rollback(n_B - 1), draft_state=draft_state, stats=stats)


def run(state: LoopState, body, prompt_len_B, opts: Options):
  """The while_loop (until every row is done), then each row's new tokens, padded with 0."""
  state = jax.lax.while_loop(lambda s: ~jnp.all(s.done_B), body, state)
  M, S = opts.max_new_tokens, opts.capacity
  new_B = state.stats.new_tokens_B
  cols_BM = prompt_len_B[:, None] + jnp.arange(M)
  tokens_BM = jnp.take_along_axis(state.seq_BS, jnp.minimum(cols_BM, S - 1), axis=1)
  tokens_BM = jnp.where(jnp.arange(M) < new_B[:, None], tokens_BM, 0)
  return jax.tree.map(sharding.replicate, (tokens_BM, new_B, state.stats)), state


_PHASES = contextvars.ContextVar("specjax_phases", default=None)
_COMPILE_ONLY = contextvars.ContextVar("specjax_compile_only", default=False)


@contextlib.contextmanager
def record_phases():
  """Within it, every generation logs a dict to the yielded list, after it ends:

  prefill_s and loop_s (wall seconds of the two programs, each waited for),
  prefill_tokens (new tokens the prefill emitted, over all rows: ArS's first).
  """
  log: List[dict] = []
  token = _PHASES.set(log)
  try:
    yield log
  finally:
    _PHASES.reset(token)


@contextlib.contextmanager
def compile_only():
  """Within it, a generation compiles its two programs (ahead of time, from their inputs'
  shapes) and runs neither: it returns zeros shaped as its output. The same call made
  afterwards finds both programs compiled, so timing it needs no warm-up generation.
  """
  token = _COMPILE_ONLY.set(True)
  try:
    yield
  finally:
    _COMPILE_ONLY.reset(token)


@dataclasses.dataclass(frozen=True)
class Phase:
  """A jitted program and its arguments: `fn(*args, **static)`."""
  fn: Callable
  args: tuple
  static: dict

  def __call__(self):
    return self.fn(*self.args, **self.static)

  def compile(self):
    """Compiles the program for these arguments (any of them abstract); returns its output's
    shapes. JAX keeps the executable: a later call with concrete arguments reuses it."""
    with _donations_expected():  # lowering the loop warns of its donations too
      lowered = self.fn.lower(*self.args, **self.static)
    lowered.compile()
    return lowered.out_info


@contextlib.contextmanager
def _donations_expected():
  """The loop's program takes over the state's buffers (the caches). Only those of the same
  shape as an output are reused; JAX warns that the others (the committed tokens, done flags)
  were not usable, which is expected here: that warning is silenced."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    yield


def _donating(loop: Phase):
  """loop(), the loop's program taking over the state's buffers (`_donations_expected`)."""
  with _donations_expected():
    return loop()


def _zeros_like(shapes):
  return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)


def two_phases(prefill: Phase, loop: Callable[[LoopState], Phase]):
  """The loop phase run on the prefill's state, the phases timed apart inside
  `record_phases`, only compiled inside `compile_only`."""
  if _COMPILE_ONLY.get():
    return _zeros_like(loop(prefill.compile()).compile())
  log = _PHASES.get()
  if log is None:
    return _donating(loop(prefill()))
  t0 = time.perf_counter()
  state = jax.block_until_ready(prefill())
  t1 = time.perf_counter()
  # Before the loop consumes `state`; in NumPy, since an eager jnp op compiles in a timed call.
  prefill_tokens = int(np.sum(jax.device_get(state.stats.new_tokens_B)))
  t2 = time.perf_counter()
  out = jax.block_until_ready(_donating(loop(state)))
  log.append(dict(prefill_s=t1 - t0, loop_s=time.perf_counter() - t2,
                  prefill_tokens=prefill_tokens))
  return out
