"""Prompt checking and packing, done on the host before anything compiles."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from specjax.checks import as_int

MODEL_EOS = "model"  # default eos_id argument: use the model's own end-of-sequence id
Prompts = Union[Sequence[str], Sequence[Sequence[int]], np.ndarray]


def _round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def encode_prompts(prompts: Prompts, tokenizer=None) -> List[List[int]]:
  """Strings go through the model's tokenizer; id lists are taken as they are."""
  if isinstance(prompts, (str, bytes)):
    raise ValueError("prompts must be a list of prompts, got a single string; wrap it in a list")
  if not isinstance(prompts, (list, tuple, np.ndarray)):
    raise ValueError(f"prompts must be a list of prompts (strings or token-id lists), got "
                     f"{type(prompts).__name__} {prompts!r:.80}")
  if isinstance(prompts, np.ndarray):
    if prompts.ndim != 2:
      raise ValueError(f"a prompt array must be 2-D [batch, tokens], got shape {prompts.shape}")
    prompts = prompts.tolist()
  prompts = list(prompts)
  if not prompts:
    raise ValueError("prompts is empty: pass at least one prompt")
  out = []
  for i, p in enumerate(prompts):
    if isinstance(p, str):
      if tokenizer is None:
        raise ValueError(f"prompt {i} is a string but the model has no tokenizer; pass token ids")
      p = tokenizer.encode(p)
    arr = np.asarray(p)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
      raise ValueError(f"prompt {i} must be a 1-D sequence of integer token ids, got {p!r:.80}")
    ids = [int(t) for t in arr.tolist()]
    out.append(ids)
  return out


def pack_prompts(prompts: List[List[int]], vocab_size: int, max_len: int, max_new_tokens: int,
                 extra_slots: int = 0, pad_multiple: int = 16
                 ) -> Tuple[np.ndarray, np.ndarray, int]:
  """Checks ids and lengths; returns (prompt_BT right-padded, prompt_len_B, cache capacity).

  `extra_slots` is what a sampler writes beyond the last emitted token (a
  speculative step writes k + 1 slots before it rolls back). The width is
  padded to a multiple of `pad_multiple` and the capacity follows from the
  width, so that all prompts in one bucket share one compilation.
  """
  pad_multiple = as_int("pad_multiple", pad_multiple, 1)
  max_new_tokens = as_int("max_new_tokens", max_new_tokens, 1)
  lens = np.array([len(p) for p in prompts], np.int32)
  for i, p in enumerate(prompts):
    if not p:
      raise ValueError(f"prompt {i} is empty: every prompt needs at least one token")
    bad = [t for t in p if not 0 <= t < vocab_size]
    if bad:
      raise ValueError(f"prompt {i} has token id {bad[0]} outside the vocab [0, {vocab_size})")
    if len(p) + max_new_tokens > max_len:
      raise ValueError(f"prompt {i} is too long: {len(p)} tokens + max_new_tokens "
                       f"{max_new_tokens} = {len(p) + max_new_tokens} > the model's max_len "
                       f"{max_len}")
  width = _round_up(int(lens.max()), pad_multiple)
  prompt_BT = np.zeros((len(prompts), width), np.int32)
  for i, p in enumerate(prompts):
    prompt_BT[i, :len(p)] = p
  capacity = _round_up(width + max_new_tokens + extra_slots, 64)
  return prompt_BT, lens, capacity


def check_eos(eos_id, vocab_size: int) -> Optional[Tuple[int, ...]]:
  """None, a token id, or a sequence of them (any one ends a row) -> a sorted tuple or None."""
  if eos_id is None:
    return None
  ids = list(eos_id) if isinstance(eos_id, (list, tuple)) or np.ndim(eos_id) else [eos_id]
  if not ids:
    raise ValueError("eos_id is an empty list: pass None to never stop at a token")
  note = " (a token id), None or a list of token ids"
  return tuple(sorted({as_int("eos_id", t, 0, vocab_size - 1, note) for t in ids}))
