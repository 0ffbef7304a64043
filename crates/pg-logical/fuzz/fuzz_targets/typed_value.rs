//! One column value through the text and binary converters of a built-in
//! type (chosen by the first two input bytes), including arrays, enums and
//! domains.
#![no_main]

use bytes::Bytes;
use cdc_envelope::{PgType, TypeKind};
use libfuzzer_sys::fuzz_target;
use pg_logical::{builtin_pg_type, ValueDecoder};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let oid = u32::from(u16::from_be_bytes([data[0], data[1]])) % 7000;
    let value = Bytes::copy_from_slice(&data[2..]);
    let ty = match builtin_pg_type(oid, -1) {
        Some(t) => t,
        None if oid % 3 == 0 => PgType {
            oid: 70_000,
            name: "e".into(),
            modifier: -1,
            kind: TypeKind::Enum(vec![]),
        },
        None if oid % 3 == 1 => PgType {
            oid: 70_001,
            name: "d".into(),
            modifier: -1,
            kind: TypeKind::Domain(Box::new(
                builtin_pg_type(1700, -1).unwrap_or_else(|| PgType::base(1700, "numeric")),
            )),
        },
        None => PgType {
            oid,
            name: "x".into(),
            modifier: -1,
            kind: TypeKind::Unknown,
        },
    };
    let decoder = ValueDecoder::for_type(&ty);
    let _ = decoder.decode_text(&value);
    let _ = decoder.decode_binary(&value);
});
