"""`Tokenizer`: byte-level BPE built offline from GGUF metadata, and the ChatML format.

Nothing here downloads: the vocabulary, merges and special ids come from the
GGUF file (or an HF `tokenizer.json`) and the `tokenizers` library does the
work. A Tokenizer serialises to one JSON string (`to_json`), which is how orbax
checkpoints carry it, and to an HF `tokenizer.json` + `tokenizer_config.json`
pair (`save_hf`), which is how safetensors exports carry it.

Chat format of SmolLM2-Instruct (ChatML; the template in the GGUF metadata):

  >>> chat_prompt("What is the capital of France?", system=None)
  '<|im_start|>user\\nWhat is the capital of France?<|im_end|>\\n<|im_start|>assistant\\n'

With the default `system`, the template's own default system turn comes first,
exactly as `transformers`' `apply_chat_template` renders it. The model ends its
answer with `<|im_end|>`, which is the GGUF's EOS id (2), so `sj.generate`
stops there:

  ids = model.tokenizer.chat("What is the capital of France?")
  out = sj.generate(model, [ids], max_new_tokens=64)
"""
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Union

import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers

# What `tokenizer.ggml.pre` names mean: how text is split before the BPE merges
# (llama.cpp's `llama-vocab.cpp`). The merges were learned on that split, so a
# wrong one gives valid but different ids. Unknown names fall back to GPT-2's.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_DIGIT_SPLIT_PRE = ("smollm", "starcoder", "refact", "codeshell")  # GPT-2 split, digits apart
_REGEX_PRE = {"llama3": _LLAMA3_SPLIT, "llama-bpe": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT,
              "smaug-bpe": _LLAMA3_SPLIT, "dbrx": _LLAMA3_SPLIT, "falcon3": _LLAMA3_SPLIT,
              "qwen2": _QWEN2_SPLIT, "deepseek-r1-qwen": _QWEN2_SPLIT}
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_DEFAULT = object()
CHAT_ROLES = ("system", "user", "assistant")


def chat_prompt(messages: Union[str, Sequence[Mapping[str, str]]],
                system: Optional[str] = _DEFAULT, add_generation_prompt: bool = True) -> str:
  """Renders messages in SmolLM2's ChatML template (the one in its GGUF metadata).

  `messages`: one user message as a string, or [{"role": ..., "content": ...}].
  `system`: the system turn prepended when the first message is not a system
  message; by default the template's own (SMOLLM2_SYSTEM); None or "" for none.
  """
  if isinstance(messages, str):
    messages = [{"role": "user", "content": messages}]
  _check_messages(messages)
  system = SMOLLM2_SYSTEM if system is _DEFAULT else system
  if system is not None and not isinstance(system, str):
    raise ValueError(f"chat_prompt system must be a string or None, got {system!r:.60}")
  turns = []
  if system and (not messages or messages[0]["role"] != "system"):
    turns.append(f"<|im_start|>system\n{system}<|im_end|>\n")
  turns += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
  if add_generation_prompt:
    turns.append("<|im_start|>assistant\n")
  return "".join(turns)


def _check_messages(messages) -> None:
  if not isinstance(messages, (list, tuple)):
    raise ValueError(f"chat_prompt messages must be a string or a list of {{'role': ..., "
                     f"'content': ...}} dicts, got {type(messages).__name__} {messages!r:.60}")
  for i, m in enumerate(messages):
    if not isinstance(m, Mapping) or not {"role", "content"} <= set(m):
      raise ValueError(f"chat_prompt message {i} must be a dict with the keys 'role' "
                       f"and 'content', got {m!r:.60}")
    if m["role"] not in CHAT_ROLES:
      raise ValueError(f"chat_prompt message {i} role must be one of {CHAT_ROLES}, got "
                       f"{m['role']!r:.60}")
    if not isinstance(m["content"], str):
      raise ValueError(f"chat_prompt message {i} content must be a string, got "
                       f"{m['content']!r:.60}")


def _pre_tokenizer(pre: str):
  if pre in _DIGIT_SPLIT_PRE:  # SmolLM2's own tokenizer.json: Digits + ByteLevel
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False)])
  if pre in _REGEX_PRE:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_REGEX_PRE[pre]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  return pre_tokenizers.ByteLevel(add_prefix_space=False)


class Tokenizer:
  """`encode(str) -> ids`, `decode(ids) -> str`, `bos_id`, `eos_id`, `chat(...)`.

  Wraps a `tokenizers.Tokenizer`. BOS is prepended by `encode` itself when
  `add_bos` (SmolLM2: no), so the wrapped tokenizer never adds special tokens.
  """

  def __init__(self, tok: tokenizers.Tokenizer, bos_id: Optional[int] = None,
               eos_id: Optional[int] = None, add_bos: bool = False,
               chat_template: Optional[str] = None, pre: str = "gpt2"):
    self.tok, self.bos_id, self.eos_id = tok, bos_id, eos_id
    self.add_bos, self.chat_template, self.pre = bool(add_bos), chat_template, pre

  @property
  def vocab_size(self) -> int:
    return self.tok.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str, add_bos: Optional[bool] = None) -> List[int]:
    ids = self.tok.encode(text, add_special_tokens=False).ids
    if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
      ids = [self.bos_id] + ids
    return ids

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
    return self.tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  def chat(self, messages, system: Optional[str] = _DEFAULT,
           add_generation_prompt: bool = True) -> List[int]:
    """Token ids of `chat_prompt(messages, ...)`, ready to pass as a prompt."""
    return self.encode(chat_prompt(messages, system, add_generation_prompt))

  def id_to_token(self, i: Optional[int]) -> Optional[str]:
    return None if i is None else self.tok.id_to_token(int(i))

  # --- construction -----------------------------------------------------------------------
  @classmethod
  def from_gguf_metadata(cls, meta: Mapping, source: str = "GGUF") -> "Tokenizer":
    """From the `tokenizer.*` fields of a GGUF file (plain Python values)."""
    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
      raise ValueError(f"{source}: tokenizer.ggml.model {kind!r} is not supported (only "
                       "byte-level BPE, 'gpt2'); pass token ids instead of strings")
    tokens: List[str] = list(meta["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    tok = tokenizers.Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    pre = str(meta.get("tokenizer.ggml.pre", "gpt2"))
    tok.pre_tokenizer = _pre_tokenizer(pre)
    tok.decoder = decoders.ByteLevel()
    types = meta.get("tokenizer.ggml.token_type") or []
    # Control tokens (<|im_start|>, ...) must match whole in text, never be BPE-split.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == _CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == _USER_DEFINED])
    get_id = lambda k: None if meta.get(k) is None else int(meta[k])
    return cls(tok, get_id("tokenizer.ggml.bos_token_id"), get_id("tokenizer.ggml.eos_token_id"),
               bool(meta.get("tokenizer.ggml.add_bos_token", False)),
               meta.get("tokenizer.chat_template"), pre)

  def gguf_metadata(self) -> Dict:
    """The inverse of `from_gguf_metadata`, for byte-level BPE tokenizers."""
    model = json.loads(self.tok.to_str())["model"]
    if model.get("type") != "BPE":
      raise ValueError(f"only BPE tokenizers can be written to GGUF, got {model.get('type')}")
    vocab = self.tok.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for t, i in vocab.items():
      tokens[i] = t
    added = self.tok.get_added_tokens_decoder()
    types = [(_CONTROL if added[i].special else _USER_DEFINED) if i in added else 1
             for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": self.pre,
            "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.bos_token_id": self.bos_id,
            "tokenizer.ggml.eos_token_id": self.eos_id,
            "tokenizer.ggml.add_bos_token": self.add_bos,
            "tokenizer.chat_template": self.chat_template}

  # --- serialisation ----------------------------------------------------------------------
  def to_json(self) -> str:
    return json.dumps({"format": "specjax-tokenizer", "version": 1,
                       "tokenizer": json.loads(self.tok.to_str()), "bos_id": self.bos_id,
                       "eos_id": self.eos_id, "add_bos": self.add_bos,
                       "chat_template": self.chat_template, "pre": self.pre})

  @classmethod
  def from_json(cls, s: str, source: str = "tokenizer json") -> "Tokenizer":
    try:
      d = json.loads(s)
      tok = tokenizers.Tokenizer.from_str(json.dumps(d["tokenizer"]))
      return cls(tok, d.get("bos_id"), d.get("eos_id"), d.get("add_bos", False),
                 d.get("chat_template"), d.get("pre", "gpt2"))
    except Exception as e:  # json, key and tokenizers errors alike: one clear message
      raise ValueError(f"{source}: not a valid specjax tokenizer ({e})") from e

  def save_hf(self, directory: str) -> None:
    """Writes `tokenizer.json` + `tokenizer_config.json` (what transformers loads)."""
    self.tok.save(os.path.join(directory, "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
           "bos_token": self.id_to_token(self.bos_id), "eos_token": self.id_to_token(self.eos_id),
           "add_bos_token": self.add_bos, "specjax_pre_tokenizer": self.pre}
    if self.chat_template:
      cfg["chat_template"] = self.chat_template
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
      json.dump(cfg, f, indent=2)

  @classmethod
  def from_hf(cls, directory: str, config: Optional[Mapping] = None) -> "Tokenizer":
    """From an HF directory's `tokenizer.json` (+ `tokenizer_config.json`, `config.json`)."""
    path = os.path.join(directory, "tokenizer.json")
    try:
      tok = tokenizers.Tokenizer.from_file(path)
    except Exception as e:
      raise ValueError(f"{path}: cannot parse the tokenizer ({e})") from e
    cfg_path = os.path.join(directory, "tokenizer_config.json")
    cfg = {}
    if os.path.exists(cfg_path):
      with open(cfg_path) as f:
        cfg = json.load(f)
    config = config or {}
    template = cfg.get("chat_template")
    jinja = os.path.join(directory, "chat_template.jinja")  # newer transformers' layout
    if template is None and os.path.exists(jinja):
      with open(jinja) as f:
        template = f.read()

    def special_id(name):  # the token string in tokenizer_config, else the id in config.json
      t = cfg.get(f"{name}_token")
      t = t.get("content") if isinstance(t, dict) else t
      i = tok.token_to_id(t) if t else None
      i = config.get(f"{name}_token_id") if i is None else i
      return i[0] if isinstance(i, list) else i

    bos = special_id("bos")
    add_bos = cfg.get("add_bos_token")
    if add_bos is None:  # e.g. Llama-3 adds BOS through its post-processor
      ids = tok.encode("a", add_special_tokens=True).ids
      add_bos = bos is not None and bool(ids) and ids[0] == bos
    return cls(tok, bos, special_id("eos"), add_bos, template,
               cfg.get("specjax_pre_tokenizer", "gpt2"))
