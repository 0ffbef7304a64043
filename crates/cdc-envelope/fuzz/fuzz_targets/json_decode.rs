//! Fuzzes the Kafka Connect JSON decoder: any bytes as key and value must
//! give `Ok` or a typed error, never a panic, hang or overflow. The input is
//! split at the first 0xff byte into key and value; a corpus seed with a real
//! Debezium record exercises the cached-schema fast path too.
#![no_main]

use cdc_envelope::{JsonDecoder, Options};
use libfuzzer_sys::fuzz_target;

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
});
