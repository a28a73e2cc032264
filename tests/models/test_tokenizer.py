"""Tokenizer: built from GGUF metadata, round trips, serialisation, the chat format."""
import json
import os

import pytest

from specjax.models.tokenizer import SMOLLM2_SYSTEM, Tokenizer, chat_prompt
from tests.helpers import needs_smollm2

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")
TEXTS = ["the cat sat on the mat", "  leading spaces\nand\ttabs  ", "héllo wörld ✓ 日本語 🙂",
         "def f(x):\n    return x ** 2  # square", "<|im_start|>user\nhi<|im_end|>\n", ""]


def tiny_meta():
  with open(os.path.join(DATA, "tiny_bpe.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def tiny():
  return Tokenizer.from_gguf_metadata(tiny_meta())


def test_tiny_round_trip_and_merges(tiny):
  meta = tiny_meta()
  assert tiny.vocab_size == len(meta["tokenizer.ggml.tokens"])
  assert (tiny.bos_id, tiny.eos_id, tiny.add_bos) == (1, 2, False)
  for text in TEXTS:
    assert tiny.decode(tiny.encode(text)) == text
  the = meta["tokenizer.ggml.tokens"].index("Ġthe")
  assert tiny.encode(" the") == [the]  # merges applied in rank order: Ġ t, h e, Ġt he
  # Control tokens stay whole instead of being split into bytes.
  assert tiny.encode("<|im_start|>x<|im_end|>")[0] == 1
  assert tiny.encode("<|im_start|>x<|im_end|>")[-1] == 2
  assert tiny.decode(tiny.encode("<|im_end|>x"), skip_special_tokens=True) == "x"
  assert tiny.encode("a", add_bos=True)[0] == 1


def test_smollm_pre_tokenizer_splits_digits(tiny):
  # SmolLM2's own tokenizer.json splits every digit (pre "smollm"); plain GPT-2 would not.
  ids = tiny.encode("2024")
  assert len(ids) == 4 and tiny.decode(ids) == "2024"


def test_serialisation_round_trips(tiny, tmp_path):
  again = Tokenizer.from_json(tiny.to_json())
  tiny.save_hf(str(tmp_path))
  hf = Tokenizer.from_hf(str(tmp_path))
  for t in (again, hf):
    assert (t.bos_id, t.eos_id, t.add_bos, t.chat_template, t.pre) == \
        (tiny.bos_id, tiny.eos_id, tiny.add_bos, tiny.chat_template, tiny.pre)
    assert [t.encode(x) for x in TEXTS] == [tiny.encode(x) for x in TEXTS]
  meta = tiny_meta()
  assert tiny.gguf_metadata() == meta  # GGUF metadata -> Tokenizer -> GGUF metadata
  with pytest.raises(ValueError, match="tok.json: not a valid specjax tokenizer"):
    Tokenizer.from_json("{not json", source="tok.json")
  with pytest.raises(ValueError, match="tokenizer.ggml.model 'llama' is not supported"):
    Tokenizer.from_gguf_metadata({**meta, "tokenizer.ggml.model": "llama"})


def test_chat_prompt_format():
  assert chat_prompt("Hi there", system=None) == \
      "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
  assert chat_prompt("Hi") == (f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n"
                               "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
  msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]
  assert chat_prompt(msgs, add_generation_prompt=False) == (
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n")


def test_chat_prompt_matches_the_jinja_template():
  jinja2 = pytest.importorskip("jinja2")
  template = jinja2.Template(tiny_meta()["tokenizer.chat_template"])
  cases = ["Hi", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
           [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]]
  for msgs in cases:
    as_list = [{"role": "user", "content": msgs}] if isinstance(msgs, str) else msgs
    for gen in (True, False):
      assert chat_prompt(msgs, add_generation_prompt=gen) == \
          template.render(messages=as_list, add_generation_prompt=gen)


@pytest.fixture(scope="module")
def smollm2_tok():
  import gguf
  from specjax.models.registry import REGISTRY
  reader = gguf.GGUFReader(REGISTRY["smollm2-135m"].path())
  meta = {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}
  return Tokenizer.from_gguf_metadata(meta)


@needs_smollm2
def test_smollm2_tokenizer(smollm2_tok):
  tok = smollm2_tok
  assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.add_bos) == (49152, 1, 2, False)
  assert tok.encode("Hello, my name is") == [19556, 28, 957, 1462, 314]
  for text in TEXTS:
    assert tok.decode(tok.encode(text)) == text
  ids = tok.chat("What is 2+2?", system=None)
  assert ids[:3] == [1, 4093, 198] and ids[-4:] == [1, 520, 9531, 198]  # <|im_start|>assistant\n
  assert tok.decode(ids) == chat_prompt("What is 2+2?", system=None)
  assert len(tok.encode("12345")) == 5


@needs_smollm2
@pytest.mark.interop
def test_smollm2_tokenizer_matches_transformers(smollm2_tok):
  pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from specjax.models.registry import REGISTRY
  path = REGISTRY["smollm2-135m"].path()
  ref = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path),
                                                   gguf_file=os.path.basename(path))
  # transformers' GGUF converter ignores the "smollm" digit split, so these avoid digits.
  texts = [t for t in TEXTS if not any(c.isdigit() for c in t)] + [chat_prompt("Hi")]
  for text in texts:
    assert smollm2_tok.encode(text) == ref.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("messages,kw,match", [
    (None, {}, "chat_prompt messages must be a string or a list"),
    (123, {}, "chat_prompt messages"), (b"", {}, "chat_prompt messages"),
    (["hi"], {}, "message 0 must be a dict"), ([{"role": "user"}], {}, "message 0 must be a dict"),
    ([{"role": "bogus", "content": "x"}], {}, "message 0 role must be one of"),
    ([{"role": "user", "content": None}], {}, "message 0 content must be a string"),
    ("hi", {"system": 123}, "chat_prompt system must be a string or None")])
def test_chat_prompt_refuses_what_it_would_render_as_text(messages, kw, match):
  with pytest.raises(ValueError, match=match):
    chat_prompt(messages, **kw)
