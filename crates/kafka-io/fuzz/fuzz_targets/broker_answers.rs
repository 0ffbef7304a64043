//! Arbitrary bytes as a broker's answer to each request the native
//! producer sends (ApiVersions, Metadata, FindCoordinator, InitProducerId,
//! AddPartitionsToTxn, EndTxn, Produce): a value or a typed error, never a
//! panic, and no allocation sized by an unchecked length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kafka_io::fuzzing::decode_answers(data);
});
