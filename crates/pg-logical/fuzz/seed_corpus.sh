#!/usr/bin/env bash
# Builds the fuzz seed corpus from the real captures in ../tests/fixtures:
# each capture file becomes length-prefixed message streams for decode_stream
# (one seed per 64 messages), and every distinct (built-in type, text value)
# of the text and binary captures becomes a typed_value seed (u16 type OID + value).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$HERE/corpus/decode_stream"
mkdir -p "$OUT"
python3 - "$HERE/../tests/fixtures" "$OUT" <<'PY'
import sys, pathlib, struct
fixtures, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for f in sorted(fixtures.glob("pg*/*.hex")):
    msgs = [bytes.fromhex(l.strip()) for l in f.read_text().splitlines() if l.strip()]
    # Keep Relation/Type messages in every chunk so rows can be typed.
    header = [m for m in msgs if m[:1] in (b"R", b"Y")]
    for i in range(0, len(msgs), 64):
        chunk = header + msgs[i:i + 64]
        data = b"".join(struct.pack(">H", min(len(m), 65535)) + m[:65535] for m in chunk)
        (out / f"{f.parent.name}-{f.stem}-{i:05}").write_bytes(data)
        n += 1
print(f"{n} seeds in {out}")

# typed_value: walk Relation and Insert messages of the text captures.
tv = out.parent / "typed_value"
tv.mkdir(parents=True, exist_ok=True)
def cstr(b, i):
    j = b.index(0, i)
    return b[i:j], j + 1
rels, seen = {}, set()
# Text and binary (`binary 'true'`) tuples: the binary ones seed arrays,
# ranges, network types and bit strings in their send formats.
for f in sorted(fixtures.glob("pg*/v1_text.hex")) + sorted(fixtures.glob("pg*/v1_binary.hex")):
    for line in f.read_text().splitlines():
        m = bytes.fromhex(line.strip())
        if m[:1] == b"R":
            oid = struct.unpack(">I", m[1:5])[0]
            _, i = cstr(m, 5); _, i = cstr(m, i); i += 1
            ncols = struct.unpack(">h", m[i:i + 2])[0]; i += 2
            types = []
            for _ in range(ncols):
                i += 1; _, i = cstr(m, i)
                types.append(struct.unpack(">I", m[i:i + 4])[0]); i += 8
            rels[oid] = types
        elif m[:1] == b"I":
            types = rels.get(struct.unpack(">I", m[1:5])[0], [])
            i, ncols = 8, struct.unpack(">h", m[6:8])[0]
            for c in range(ncols):
                kind = m[i:i + 1]; i += 1
                if kind in (b"t", b"b"):
                    ln = struct.unpack(">I", m[i:i + 4])[0]; val = m[i + 4:i + 4 + ln]; i += 4 + ln
                    t = types[c] if c < len(types) else 0
                    if t < 7000 and (t, val) not in seen and len(val) < 4096:
                        seen.add((t, val))
                        (tv / f"v{len(seen):05}").write_bytes(struct.pack(">H", t) + val)
print(f"{len(seen)} seeds in {tv}")
PY
