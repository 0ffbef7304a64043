//! A stream of pgoutput messages (each prefixed by a big-endian u16 length)
//! through the stateful decoder, the relation cache and the typed row
//! conversion. Seeds: the real captures (`seed_corpus.sh`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pg_logical::{decode_message, Decoder, RelationCache};

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    let mut decoder = Decoder::new();
    let mut cache = RelationCache::new();
    let mut pos = 0usize;
    while pos + 2 <= data.len() {
        let len = usize::from(u16::from_be_bytes([data[pos], data[pos + 1]]));
        pos += 2;
        let end = (pos + len).min(data.len());
        let msg = data.slice(pos..end);
        pos = end;
        // Stateless decoding in both modes must never panic either.
        let _ = decode_message(msg.clone(), true);
        if let Ok(m) = decoder.decode(msg) {
            cache.apply(&m);
            let _ = cache.row_change(&m);
        }
    }
});
