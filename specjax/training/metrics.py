"""Metrics: TensorBoard scalar event files, a terminal progress bar, JSON summaries.

The event files are written in pure Python (TFRecord framing + hand-encoded
protobuf) so that training needs neither tensorflow nor tensorboard installed;
`read_scalars` reads them back for tests and for inspecting a workdir.

Record framing (TFRecord), all little-endian:
  uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
Messages (only the fields we use):
  Event   {1: wall_time double, 2: step int64, 3: file_version string, 5: summary}
  Summary {1: repeated Value};  Value {1: tag string, 2: simple_value float}
"""
import json
import os
import socket
import struct
import sys
import tempfile
import time

_FILE_VERSION = b"brain.Event:2"


def _crc_table():
  table = []
  for n in range(256):
    for _ in range(8):
      n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1  # Castagnoli, reflected
    table.append(n)
  return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  # TFRecord masks the CRC so that CRCs of data that itself holds CRCs stay well spread.
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # negative int64 -> ten-byte two's complement, as protobuf does
  out = bytearray()
  while n >= 0x80:
    out.append((n & 0x7F) | 0x80)
    n >>= 7
  out.append(n)
  return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
  return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, summary: bytes = b"", file_version: bytes = b"") -> bytes:
  out = _varint(1 << 3 | 1) + struct.pack("<d", time.time()) + _varint(2 << 3 | 0) + _varint(step)
  if file_version:
    out += _len_field(3, file_version)
  if summary:
    out += _len_field(5, summary)
  return out


def _value(tag: str, value: float) -> bytes:
  return _len_field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", float(value))


class SummaryWriter:
  """Appends scalar summaries to one TensorBoard event file under `logdir`."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.specjax"
    self.path = os.path.join(logdir, name)
    # Append, not truncate: a second writer in the same second and process must not erase the
    # first one's records; a repeated file_version record is harmless to readers.
    self._f = open(self.path, "ab")
    self._write(_event(0, file_version=_FILE_VERSION))

  def _write(self, data: bytes):
    header = struct.pack("<Q", len(data))
    self._f.write(header + struct.pack("<I", _masked_crc(header)) + data
                  + struct.pack("<I", _masked_crc(data)))
    self._f.flush()  # steps are slow; a crash should lose nothing already logged

  def scalar(self, tag: str, value, step: int):
    self.scalars({tag: value}, step)

  def scalars(self, values: dict, step: int):
    """Writes all `values` as one Event at `step`."""
    summary = b"".join(_len_field(1, _value(t, v)) for t, v in values.items())
    self._write(_event(int(step), summary=summary))

  def flush(self):
    self._f.flush()

  def close(self):
    if not self._f.closed:
      self._f.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _fields(buf: bytes):
  """Yields (field number, wire type, value) of a protobuf message; raises ValueError if malformed."""
  i = 0

  def varint():
    nonlocal i
    n = shift = 0
    while True:
      if i >= len(buf) or shift > 63:
        raise ValueError("bad varint")
      b = buf[i]
      i += 1
      n |= (b & 0x7F) << shift
      shift += 7
      if b < 0x80:
        return n

  while i < len(buf):
    key = varint()
    field, wire = key >> 3, key & 7
    if wire == 0:
      yield field, wire, varint()
      continue
    size = {1: 8, 5: 4}.get(wire)
    if wire == 2:
      size = varint()
    if size is None or i + size > len(buf):
      raise ValueError(f"bad protobuf field {field} (wire type {wire})")
    yield field, wire, buf[i:i + size]
    i += size


def _records(data: bytes):
  i = 0
  while i < len(data):
    if i + 12 > len(data):
      raise ValueError("truncated record header")
    header, crc = data[i:i + 8], struct.unpack("<I", data[i + 8:i + 12])[0]
    if _masked_crc(header) != crc:
      raise ValueError(f"length crc mismatch at byte {i}")
    (size,) = struct.unpack("<Q", header)
    if i + 16 + size > len(data):
      raise ValueError("truncated record")
    record, crc = data[i + 12:i + 12 + size], struct.unpack("<I", data[i + 12 + size:i + 16 + size])[0]
    if _masked_crc(record) != crc:
      raise ValueError(f"data crc mismatch at byte {i}")
    yield record
    i += 16 + size


def read_scalars(path: str) -> dict:
  """{tag: [(step, value), ...]} from an event file, or from all event files in a directory."""
  if os.path.isdir(path):
    paths = [os.path.join(path, n) for n in sorted(os.listdir(path)) if "tfevents" in n]
  else:
    paths = [path]
  out = {}
  for p in paths:
    with open(p, "rb") as f:
      data = f.read()
    for record in _records(data):
      fields = list(_fields(record))
      step = next((v for f, w, v in fields if (f, w) == (2, 0)), 0)
      step = step - (1 << 64) if step >= 1 << 63 else step  # int64 sign
      for value in (v for f, w, v in fields if (f, w) == (5, 2)):
        for val in (v for f, w, v in _fields(value) if (f, w) == (1, 2)):
          tag, simple = None, None
          for f, w, v in _fields(val):
            if (f, w) == (1, 2):
              tag = v.decode()
            elif (f, w) == (2, 5):
              simple = struct.unpack("<f", v)[0]
          if tag is not None and simple is not None:  # images, tensors etc. are skipped
            out.setdefault(tag, []).append((step, simple))
  return out


def _duration(seconds: float) -> str:
  s = int(round(seconds))
  h, m = s // 3600, s // 60 % 60
  return f"{h}h{m:02d}m{s % 60:02d}s" if h else f"{m}m{s % 60:02d}s" if m else f"{s}s"


class Progress:
  """One-line progress bar; redrawn in place on a terminal, throttled full lines in logs."""

  _WIDTH = 20

  def __init__(self, total: int, initial: int = 0, stream=None, min_interval: float = 0.5,
               clock=time.monotonic):
    self.total, self.initial, self.clock = total, initial, clock
    self.stream = sys.stderr if stream is None else stream
    self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
    # Logs are read later by people, so print there much less often than a terminal redraws.
    self.interval = min_interval if self.tty else min_interval * 20
    self.t0, self.last_print, self.pending, self.width = clock(), None, "", 0

  def format(self, step: int, **fields) -> str:
    elapsed = self.clock() - self.t0
    # Rate over steps done in this run only, so a resumed run's ETA is not inflated.
    rate = (step - self.initial) / elapsed if elapsed > 0 and step > self.initial else 0.0
    frac = min(max(step / self.total, 0.0), 1.0) if self.total else 0.0
    bar = "#" * int(frac * self._WIDTH)
    eta = _duration((self.total - step) / rate) if rate > 0 else "?"
    parts = [f"step {step}/{self.total}", f"[{bar:-<{self._WIDTH}}]", f"{int(frac * 100)}%",
             f"{rate:.3g} it/s", f"ETA {eta}"]
    for k, v in fields.items():
      v = v.item() if hasattr(v, "item") else v  # numpy / jax scalars
      parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)

  def update(self, step: int, **fields):
    now, self.pending = self.clock(), self.format(step, **fields)
    if self.last_print is None or now - self.last_print >= self.interval or step >= self.total:
      self._print(now)

  def _print(self, now):
    if self.tty:  # pad over the rest of a longer previous line
      self.stream.write("\r" + self.pending.ljust(self.width))
      self.width = len(self.pending)
    else:
      self.stream.write(self.pending + "\n")
    self.stream.flush()
    self.last_print, self.pending = now, ""

  def close(self):
    if self.pending:  # the last state was throttled away: show it
      self._print(self.clock())
    if self.tty and self.width:
      self.stream.write("\n")
      self.stream.flush()
      self.width = 0


def _json_default(o):
  if hasattr(o, "ndim") and o.ndim == 0:  # numpy / jax scalars
    return o.item()
  if hasattr(o, "tolist"):
    return o.tolist()
  raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_summary(path: str, summary: dict):
  """Writes `summary` as JSON atomically: readers never see a half-written file."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp.", suffix=".json")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(summary, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
