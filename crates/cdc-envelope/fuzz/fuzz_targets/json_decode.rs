//! Fuzzes the Kafka Connect JSON decoder: any bytes as key and value must
//! give `Ok` or a typed error, never a panic, hang or overflow. The input is
//! split at the first 0xff byte into key and value; a corpus seed with a real
//! Debezium record exercises the cached-schema fast path too.
#![no_main]

use std::sync::{Mutex, OnceLock};

use cdc_envelope::{DecodedRecord, JsonDecoder, Options};
use libfuzzer_sys::fuzz_target;

/// Two decoders with the same history (so the same caches) and the record
/// the reusing one decodes into, kept across runs: stale state from any
/// earlier input must never show.
fn reused() -> &'static Mutex<(JsonDecoder, JsonDecoder, DecodedRecord)> {
    static R: OnceLock<Mutex<(JsonDecoder, JsonDecoder, DecodedRecord)>> = OnceLock::new();
    R.get_or_init(|| {
        Mutex::new((
            JsonDecoder::new(Options::default()),
            JsonDecoder::new(Options::default()),
            DecodedRecord::default(),
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, value) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let mut dec = JsonDecoder::new(Options::default());
    let _ = dec.decode(key, Some(value));
    // Twice: the second call takes the schema-cache path.
    let _ = dec.decode(key, Some(value));
    let _ = dec.decode(key, None);
    // From shared bytes (zero-copy strings), cached path included.
    let shared = bytes::Bytes::copy_from_slice(value);
    let _ = dec.decode_bytes(key, Some(&shared));
    // Into a reused record: exactly what the allocating path decodes, the
    // same error, or (tombstone) no event; the record is empty after errors.
    let Ok(mut guard) = reused().lock() else {
        return;
    };
    let (fresh, reusing, out) = &mut *guard;
    for value in [Some(&shared), None] {
        let expected = fresh.decode_bytes(key, value);
        match (expected, reusing.decode_bytes_into(key, value, out)) {
            (Ok(e), Ok(())) => assert_eq!(format!("{e:?}"), format!("{out:?}")),
            (Err(e), Err(g)) => {
                assert_eq!(e, g);
                assert_eq!(*out, DecodedRecord::default());
            }
            (e, g) => panic!("allocating path {e:?}, reusing path {g:?}"),
        }
    }
});
