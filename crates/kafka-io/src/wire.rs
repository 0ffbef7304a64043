//! The part of Kafka's wire protocol the native producer speaks: framing,
//! the requests it sends and pure decoders of their responses, and
//! record batches (format v2) with LZ4 compression.
//!
//! Only non-flexible request versions are used (no tagged fields), each
//! chosen within what every broker since Kafka 2.1 supports, Kafka 4.x
//! included (checked against its `ApiVersions` answer):
//!
//! | API | key | version |
//! |---|---|---|
//! | Produce | 0 | 7 |
//! | Metadata | 3 | 4 |
//! | FindCoordinator | 10 | 1 |
//! | ApiVersions | 18 | 0 |
//! | InitProducerId | 22 | 1 |
//! | AddPartitionsToTxn | 24 | 1 |
//! | EndTxn | 26 | 1 |
//!
//! Decoders never panic: a short or malformed answer is an
//! [`Error::Protocol`] naming the API and what was missing.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// An API this module speaks: its key, the version used, its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Api {
    pub key: i16,
    pub version: i16,
    pub name: &'static str,
}

pub(crate) const PRODUCE: Api = Api {
    key: 0,
    version: 7,
    name: "Produce",
};
pub(crate) const METADATA: Api = Api {
    key: 3,
    version: 4,
    name: "Metadata",
};
pub(crate) const FIND_COORDINATOR: Api = Api {
    key: 10,
    version: 1,
    name: "FindCoordinator",
};
pub(crate) const API_VERSIONS: Api = Api {
    key: 18,
    version: 0,
    name: "ApiVersions",
};
pub(crate) const INIT_PRODUCER_ID: Api = Api {
    key: 22,
    version: 1,
    name: "InitProducerId",
};
pub(crate) const ADD_PARTITIONS_TO_TXN: Api = Api {
    key: 24,
    version: 1,
    name: "AddPartitionsToTxn",
};
pub(crate) const END_TXN: Api = Api {
    key: 26,
    version: 1,
    name: "EndTxn",
};

/// Every API the producer needs, for the `ApiVersions` check.
pub(crate) const USED: [Api; 7] = [
    PRODUCE,
    METADATA,
    FIND_COORDINATOR,
    API_VERSIONS,
    INIT_PRODUCER_ID,
    ADD_PARTITIONS_TO_TXN,
    END_TXN,
];

/// Writes a request: size, header v1 (key, version, correlation id,
/// client id), then the body the closure writes. The size is filled in
/// last.
pub(crate) fn request(
    out: &mut BytesMut,
    api: Api,
    correlation_id: i32,
    client_id: &str,
    body: impl FnOnce(&mut BytesMut),
) {
    let start = out.len();
    out.put_i32(0);
    out.put_i16(api.key);
    out.put_i16(api.version);
    out.put_i32(correlation_id);
    put_string(out, client_id);
    body(out);
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

pub(crate) fn put_string(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

pub(crate) fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.put_i16(-1),
    }
}

/// Zigzag varint (records' lengths and deltas).
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A cursor over a response body with typed, never-panicking reads.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    api: &'static str,
}

impl Reader {
    pub(crate) fn new(api: &'static str, buf: Bytes) -> Self {
        Self { buf, api }
    }

    fn short(&self, what: &str, need: usize) -> Error {
        Error::Protocol {
            operation: self.api,
            detail: format!(
                "answer ends before {what} ({need} bytes needed, {} left)",
                self.buf.remaining()
            ),
        }
    }

    fn need(&self, what: &str, n: usize) -> Result<()> {
        if self.buf.remaining() < n {
            Err(self.short(what, n))
        } else {
            Ok(())
        }
    }

    pub(crate) fn i8(&mut self, what: &str) -> Result<i8> {
        self.need(what, 1)?;
        Ok(self.buf.get_i8())
    }

    pub(crate) fn i16(&mut self, what: &str) -> Result<i16> {
        self.need(what, 2)?;
        Ok(self.buf.get_i16())
    }

    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        self.need(what, 4)?;
        Ok(self.buf.get_i32())
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        self.need(what, 8)?;
        Ok(self.buf.get_i64())
    }

    pub(crate) fn nullable_string(&mut self, what: &str) -> Result<Option<String>> {
        let n = self.i16(what)?;
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        self.need(what, n)?;
        let b = self.buf.split_to(n);
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| Error::Protocol {
                operation: self.api,
                detail: format!("{what} is not UTF-8"),
            })
    }

    pub(crate) fn string(&mut self, what: &str) -> Result<String> {
        self.nullable_string(what)?.ok_or_else(|| Error::Protocol {
            operation: self.api,
            detail: format!("{what} is null"),
        })
    }

    /// An array's length; a null array reads as empty. Lengths that could
    /// not fit in what is left (each element takes at least `min_item`
    /// bytes) are refused before anything is allocated for them.
    pub(crate) fn array(&mut self, what: &str, min_item: usize) -> Result<usize> {
        let n = self.i32(what)?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_item) > self.buf.remaining() {
            return Err(self.short(what, n.saturating_mul(min_item)));
        }
        Ok(n)
    }
}

/// The correlation id of a response, and its body.
pub(crate) fn split_response(mut frame: Bytes) -> Result<(i32, Bytes)> {
    if frame.len() < 4 {
        return Err(Error::Protocol {
            operation: "response header",
            detail: format!("a {}-byte answer has no correlation id", frame.len()),
        });
    }
    let id = frame.get_i32();
    Ok((id, frame))
}

/// An API key and the lowest and highest version a broker speaks.
pub(crate) type ApiRange = (i16, i16, i16);

/// `ApiVersions` v0: the supported version range of each API.
pub(crate) fn api_versions(body: Bytes) -> Result<(i16, Vec<ApiRange>)> {
    let mut r = Reader::new(API_VERSIONS.name, body);
    let error = r.i16("error_code")?;
    let n = r.array("api_keys", 6)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((
            r.i16("api_key")?,
            r.i16("min_version")?,
            r.i16("max_version")?,
        ));
    }
    Ok((error, out))
}

/// A broker of a `Metadata` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A topic of a `Metadata` answer: its error, and each partition's error
/// and leader (indexed by partition id; -1 = no leader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicInfo {
    pub error: i16,
    pub name: String,
    pub partitions: Vec<(i32, i16, i32)>,
}

/// `Metadata` v4 request for `topics`, without auto-creation.
pub(crate) fn metadata_request(out: &mut BytesMut, topics: &[&str]) {
    out.put_i32(topics.len() as i32);
    for t in topics {
        put_string(out, t);
    }
    out.put_u8(0); // allow_auto_topic_creation
}

/// `Metadata` v4 answer.
pub(crate) fn metadata(body: Bytes) -> Result<(Vec<BrokerInfo>, Vec<TopicInfo>)> {
    let mut r = Reader::new(METADATA.name, body);
    r.i32("throttle_time_ms")?;
    let n = r.array("brokers", 12)?;
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        let node_id = r.i32("node_id")?;
        let host = r.string("host")?;
        let port = r.i32("port")?;
        r.nullable_string("rack")?;
        brokers.push(BrokerInfo {
            node_id,
            host,
            port,
        });
    }
    r.nullable_string("cluster_id")?;
    r.i32("controller_id")?;
    let n = r.array("topics", 9)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let error = r.i16("topic error_code")?;
        let name = r.string("topic name")?;
        r.i8("is_internal")?;
        let np = r.array("partitions", 18)?;
        let mut partitions = Vec::with_capacity(np);
        for _ in 0..np {
            let perr = r.i16("partition error_code")?;
            let index = r.i32("partition_index")?;
            let leader = r.i32("leader_id")?;
            for what in ["replica_nodes", "isr_nodes"] {
                let k = r.array(what, 4)?;
                for _ in 0..k {
                    r.i32(what)?;
                }
            }
            partitions.push((index, perr, leader));
        }
        topics.push(TopicInfo {
            error,
            name,
            partitions,
        });
    }
    Ok((brokers, topics))
}

/// `FindCoordinator` v1 request for a transactional id.
pub(crate) fn find_coordinator_request(out: &mut BytesMut, transactional_id: &str) {
    put_string(out, transactional_id);
    out.put_i8(1); // key_type: transaction
}

/// `FindCoordinator` v1 answer: error, message, coordinator.
pub(crate) fn find_coordinator(body: Bytes) -> Result<(i16, Option<String>, BrokerInfo)> {
    let mut r = Reader::new(FIND_COORDINATOR.name, body);
    r.i32("throttle_time_ms")?;
    let error = r.i16("error_code")?;
    let message = r.nullable_string("error_message")?;
    let node_id = r.i32("node_id")?;
    let host = r.string("host")?;
    let port = r.i32("port")?;
    Ok((
        error,
        message,
        BrokerInfo {
            node_id,
            host,
            port,
        },
    ))
}

/// `InitProducerId` v1 request.
pub(crate) fn init_producer_id_request(
    out: &mut BytesMut,
    transactional_id: &str,
    timeout_ms: i32,
) {
    put_nullable_string(out, Some(transactional_id));
    out.put_i32(timeout_ms);
}

/// `InitProducerId` v1 answer: error, producer id, epoch.
pub(crate) fn init_producer_id(body: Bytes) -> Result<(i16, i64, i16)> {
    let mut r = Reader::new(INIT_PRODUCER_ID.name, body);
    r.i32("throttle_time_ms")?;
    Ok((
        r.i16("error_code")?,
        r.i64("producer_id")?,
        r.i16("producer_epoch")?,
    ))
}

/// `AddPartitionsToTxn` v1 request.
pub(crate) fn add_partitions_request(
    out: &mut BytesMut,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[(&str, i32)],
) {
    put_string(out, transactional_id);
    out.put_i64(producer_id);
    out.put_i16(epoch);
    let mut topics: Vec<&str> = partitions.iter().map(|(t, _)| *t).collect();
    topics.sort_unstable();
    topics.dedup();
    out.put_i32(topics.len() as i32);
    for t in topics {
        put_string(out, t);
        let ps: Vec<i32> = partitions
            .iter()
            .filter(|(x, _)| *x == t)
            .map(|(_, p)| *p)
            .collect();
        out.put_i32(ps.len() as i32);
        for p in ps {
            out.put_i32(p);
        }
    }
}

/// `AddPartitionsToTxn` v1 answer: (topic, partition, error) each.
pub(crate) fn add_partitions(body: Bytes) -> Result<Vec<(String, i32, i16)>> {
    let mut r = Reader::new(ADD_PARTITIONS_TO_TXN.name, body);
    r.i32("throttle_time_ms")?;
    let n = r.array("results", 6)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let topic = r.string("name")?;
        let np = r.array("partition results", 6)?;
        for _ in 0..np {
            let p = r.i32("partition_index")?;
            out.push((topic.clone(), p, r.i16("error_code")?));
        }
    }
    Ok(out)
}

/// `EndTxn` v1 request.
pub(crate) fn end_txn_request(
    out: &mut BytesMut,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) {
    put_string(out, transactional_id);
    out.put_i64(producer_id);
    out.put_i16(epoch);
    out.put_u8(u8::from(commit));
}

/// `EndTxn` v1 answer: its error code.
pub(crate) fn end_txn(body: Bytes) -> Result<i16> {
    let mut r = Reader::new(END_TXN.name, body);
    r.i32("throttle_time_ms")?;
    r.i16("error_code")
}

/// One partition's part of a `Produce` v7 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionAck {
    pub topic: String,
    pub partition: i32,
    pub error: i16,
    pub base_offset: i64,
}

/// A topic's encoded batches of one Produce request, by partition.
pub(crate) type TopicBatches = (std::sync::Arc<str>, Vec<(i32, Bytes)>);

/// `Produce` v7 request (acks=all): each topic's partitions with their
/// encoded record batch.
pub(crate) fn produce_request(
    out: &mut BytesMut,
    transactional_id: Option<&str>,
    timeout_ms: i32,
    topics: &[TopicBatches],
) {
    let batches: usize = topics
        .iter()
        .flat_map(|(_, parts)| parts.iter().map(|(_, b)| b.len() + 8))
        .sum();
    out.reserve(batches + 64 + 32 * topics.len());
    put_nullable_string(out, transactional_id);
    out.put_i16(-1); // acks=all
    out.put_i32(timeout_ms);
    out.put_i32(topics.len() as i32);
    for (topic, parts) in topics {
        put_string(out, topic);
        out.put_i32(parts.len() as i32);
        for (p, batch) in parts {
            out.put_i32(*p);
            out.put_i32(batch.len() as i32);
            out.extend_from_slice(batch);
        }
    }
}

/// `Produce` v7 answer.
pub(crate) fn produce(body: Bytes) -> Result<Vec<PartitionAck>> {
    let mut r = Reader::new(PRODUCE.name, body);
    let n = r.array("responses", 6)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let topic = r.string("name")?;
        let np = r.array("partition_responses", 30)?;
        for _ in 0..np {
            let partition = r.i32("index")?;
            let error = r.i16("error_code")?;
            let base_offset = r.i64("base_offset")?;
            r.i64("log_append_time_ms")?;
            r.i64("log_start_offset")?;
            out.push(PartitionAck {
                topic: topic.clone(),
                partition,
                error,
                base_offset,
            });
        }
    }
    r.i32("throttle_time_ms")?;
    Ok(out)
}

/// Every decoder of a broker answer over `frame` (a response with its
/// correlation id): each returns a value or an error, never panics. For
/// the fuzz target and the tests.
pub(crate) fn decode_all(frame: Bytes) {
    if let Ok((_, body)) = split_response(frame) {
        let _ = api_versions(body.clone());
        let _ = metadata(body.clone());
        let _ = find_coordinator(body.clone());
        let _ = init_producer_id(body.clone());
        let _ = add_partitions(body.clone());
        let _ = end_txn(body.clone());
        let _ = produce(body);
    }
}

/// The codec of a record batch's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Stored as they are.
    None,
    /// One LZ4 frame (independent 64 KiB blocks, as the Java client writes).
    Lz4,
}

impl Compression {
    fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 3,
        }
    }
}

/// Records of one partition accumulating into a batch: each record is
/// written once, in its final (uncompressed) form.
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    records: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    scratch: Vec<u8>,
}

impl BatchBuilder {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            records: Vec::with_capacity(capacity),
            count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            scratch: Vec::with_capacity(32),
        }
    }

    /// Empties the batch, keeping its buffer for the next one.
    pub(crate) fn reset(&mut self) {
        self.records.clear();
        self.count = 0;
    }

    /// Records in the batch.
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// Bytes of the records (uncompressed).
    pub(crate) fn size(&self) -> usize {
        self.records.len()
    }

    /// Appends a record (format v2: attributes 0, deltas from the batch's
    /// first record).
    pub(crate) fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let s = &mut self.scratch;
        s.clear();
        s.push(0); // attributes
        put_varint(s, timestamp - self.base_timestamp);
        put_varint(s, i64::from(self.count));
        let body_len = s.len()
            + len_field(key)
            + len_field(value)
            + varint_len(headers.len() as i64)
            + headers
                .iter()
                .map(|(k, v)| varint_len(k.len() as i64) + k.len() + len_field(*v))
                .sum::<usize>();
        put_varint(&mut self.records, body_len as i64);
        self.records.extend_from_slice(s);
        put_bytes(&mut self.records, key);
        put_bytes(&mut self.records, value);
        put_varint(&mut self.records, headers.len() as i64);
        for (k, v) in headers {
            put_varint(&mut self.records, k.len() as i64);
            self.records.extend_from_slice(k.as_bytes());
            put_bytes(&mut self.records, *v);
        }
        self.count += 1;
    }

    /// The finished batch (format v2, CRC-32C), sent as is. `producer`
    /// is (producer id, epoch, base sequence); `transactional` sets the
    /// attribute bit; `block_buf` is the compressor's scratch, kept
    /// between batches.
    pub(crate) fn finish(
        &self,
        compression: Compression,
        producer: (i64, i16, i32),
        transactional: bool,
        out: &mut Vec<u8>,
        block_buf: &mut Vec<u8>,
    ) -> Result<()> {
        out.clear();
        out.extend_from_slice(&0i64.to_be_bytes()); // base offset
        out.extend_from_slice(&0i32.to_be_bytes()); // length, below
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(2); // magic
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, below
        let mut attributes = compression.attribute();
        if transactional {
            attributes |= 0x10;
        }
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes()); // last offset delta
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&producer.0.to_be_bytes());
        out.extend_from_slice(&producer.1.to_be_bytes());
        out.extend_from_slice(&producer.2.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        match compression {
            Compression::None => out.extend_from_slice(&self.records),
            Compression::Lz4 => lz4_frame(&self.records, out, block_buf)?,
        }
        let length = (out.len() - 12) as i32;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }
}

/// An LZ4 frame header (magic; FLG: version 1, independent blocks, no
/// checksums or content size; BD: 64 KiB blocks; header checksum), as the
/// Java client writes it and as `lz4_flex`'s frame encoder does for the
/// same settings (checked in the tests).
const LZ4_FRAME_HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];

/// LZ4 block size: 64 KiB, the Java client's.
const LZ4_BLOCK: usize = 64 << 10;

/// `input` as one LZ4 frame appended to `out`: each 64 KiB block
/// compressed straight into `out` (stored as it is when it would not
/// shrink). Compressing blocks directly took half the CPU of `lz4_flex`'s
/// frame encoder, which first copies its input into a buffer of its own.
fn lz4_frame(input: &[u8], out: &mut Vec<u8>, block_buf: &mut Vec<u8>) -> Result<()> {
    // Zeroed once, reused for every block of every batch.
    let max = lz4_flex::block::get_maximum_output_size(LZ4_BLOCK);
    if block_buf.len() < max {
        block_buf.resize(max, 0);
    }
    out.extend_from_slice(&LZ4_FRAME_HEADER);
    for block in input.chunks(LZ4_BLOCK) {
        let n = lz4_flex::block::compress_into(block, block_buf).map_err(|e| Error::Protocol {
            operation: "LZ4 compression",
            detail: e.to_string(),
        })?;
        if n < block.len() {
            out.extend_from_slice(&(n as u32).to_le_bytes());
            out.extend_from_slice(&block_buf[..n]);
        } else {
            out.extend_from_slice(&(block.len() as u32 | 0x8000_0000).to_le_bytes());
            out.extend_from_slice(block);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // end mark
    Ok(())
}

fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

fn len_field(b: Option<&[u8]>) -> usize {
    match b {
        Some(b) => varint_len(b.len() as i64) + b.len(),
        None => 1,
    }
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

/// The name of a Kafka error code (as in the Java client's `Errors`), for
/// messages; `UNKNOWN` for codes this table lacks.
pub(crate) fn error_name(code: i16) -> &'static str {
    match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        4 => "INVALID_FETCH_SIZE",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        8 => "BROKER_NOT_AVAILABLE",
        9 => "REPLICA_NOT_AVAILABLE",
        10 => "MESSAGE_TOO_LARGE",
        13 => "NETWORK_EXCEPTION",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        17 => "INVALID_TOPIC_EXCEPTION",
        18 => "RECORD_LIST_TOO_LARGE",
        19 => "NOT_ENOUGH_REPLICAS",
        20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        21 => "INVALID_REQUIRED_ACKS",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        32 => "INVALID_TIMESTAMP",
        35 => "UNSUPPORTED_VERSION",
        42 => "INVALID_REQUEST",
        43 => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        44 => "POLICY_VIOLATION",
        45 => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        46 => "DUPLICATE_SEQUENCE_NUMBER",
        47 => "INVALID_PRODUCER_EPOCH",
        48 => "INVALID_TXN_STATE",
        49 => "INVALID_PRODUCER_ID_MAPPING",
        50 => "INVALID_TRANSACTION_TIMEOUT",
        51 => "CONCURRENT_TRANSACTIONS",
        52 => "TRANSACTION_COORDINATOR_FENCED",
        53 => "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        56 => "KAFKA_STORAGE_ERROR",
        59 => "UNKNOWN_PRODUCER_ID",
        74 => "FENCED_LEADER_EPOCH",
        75 => "UNKNOWN_LEADER_EPOCH",
        76 => "UNSUPPORTED_COMPRESSION_TYPE",
        87 => "INVALID_RECORD",
        89 => "THROTTLING_QUOTA_EXCEEDED",
        90 => "PRODUCER_FENCED",
        _ => "UNKNOWN",
    }
}

/// Whether the Java client retries a request that failed with `code`.
pub(crate) fn is_retriable(code: i16) -> bool {
    matches!(
        code,
        2 | 3 | 5 | 6 | 7 | 8 | 9 | 13 | 14 | 15 | 16 | 19 | 20 | 51 | 56 | 74 | 75 | 89
    )
}

/// What the producer's state becomes after an error in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Another instance took over, or the producer's id is gone: only a new
    /// producer can continue.
    Fatal,
    /// The transaction has to be aborted; the producer stays usable.
    Abortable,
}

pub(crate) fn severity(code: i16) -> Severity {
    match code {
        47 | 49 | 52 | 53 | 90 => Severity::Fatal,
        _ => Severity::Abortable,
    }
}

/// librdkafka's code for a broker error code (same numbers), for the
/// error type shared with the librdkafka engine.
pub(crate) fn rd_code(code: i16) -> rdkafka::error::RDKafkaErrorCode {
    use rdkafka::error::RDKafkaErrorCode as C;
    match code {
        -1 => C::Unknown,
        1 => C::OffsetOutOfRange,
        2 => C::InvalidMessage,
        3 => C::UnknownTopicOrPartition,
        5 => C::LeaderNotAvailable,
        6 => C::NotLeaderForPartition,
        7 => C::RequestTimedOut,
        8 => C::BrokerNotAvailable,
        9 => C::ReplicaNotAvailable,
        10 => C::MessageSizeTooLarge,
        13 => C::NetworkException,
        14 => C::CoordinatorLoadInProgress,
        15 => C::CoordinatorNotAvailable,
        16 => C::NotCoordinator,
        17 => C::InvalidTopic,
        18 => C::MessageBatchTooLarge,
        19 => C::NotEnoughReplicas,
        20 => C::NotEnoughReplicasAfterAppend,
        21 => C::InvalidRequiredAcks,
        29 => C::TopicAuthorizationFailed,
        31 => C::ClusterAuthorizationFailed,
        32 => C::InvalidTimestamp,
        35 => C::UnsupportedVersion,
        42 => C::InvalidRequest,
        43 => C::UnsupportedForMessageFormat,
        44 => C::PolicyViolation,
        45 => C::OutOfOrderSequenceNumber,
        46 => C::DuplicateSequenceNumber,
        47 => C::InvalidProducerEpoch,
        48 => C::InvalidTransactionalState,
        49 => C::InvalidProducerIdMapping,
        50 => C::InvalidTransactionTimeout,
        51 => C::ConcurrentTransactions,
        52 => C::TransactionCoordinatorFenced,
        53 => C::TransactionalIdAuthorizationFailed,
        56 => C::KafkaStorageError,
        59 => C::UnknownProducerId,
        74 => C::FencedLeaderEpoch,
        75 => C::UnknownLeaderEpoch,
        76 => C::UnsupportedCompressionType,
        87 => C::InvalidRecord,
        89 => C::ThrottlingQuotaExceeded,
        90 => C::ProducerFenced,
        _ => C::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_zigzag_encoded() {
        for (v, want) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (63, vec![126]),
            (64, vec![128, 1]),
            (-65, vec![129, 1]),
            (300, vec![216, 4]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, want, "{v}");
            assert_eq!(varint_len(v), want.len(), "{v}");
        }
        assert_eq!(varint_len(i64::MAX), 10);
        assert_eq!(varint_len(i64::MIN), 10);
    }

    #[test]
    fn truncated_answers_are_typed_errors() {
        // A Metadata answer cut anywhere: never a panic, always Protocol.
        let mut full = BytesMut::new();
        full.put_i32(0); // throttle
        full.put_i32(1); // brokers
        full.put_i32(1);
        put_string(&mut full, "localhost");
        full.put_i32(9092);
        full.put_i16(-1);
        full.put_i16(-1); // cluster id
        full.put_i32(1); // controller
        full.put_i32(1); // topics
        full.put_i16(0);
        put_string(&mut full, "t");
        full.put_u8(0);
        full.put_i32(1);
        full.put_i16(0);
        full.put_i32(0);
        full.put_i32(1);
        full.put_i32(0);
        full.put_i32(0);
        let full = full.freeze();
        let (brokers, topics) = metadata(full.clone()).expect("whole answer");
        assert_eq!(brokers[0].port, 9092);
        assert_eq!(topics[0].partitions, vec![(0, 0, 1)]);
        for cut in 0..full.len() {
            match metadata(full.slice(..cut)) {
                Err(Error::Protocol { operation, .. }) => assert_eq!(operation, "Metadata"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn lz4_frames_decode_with_an_independent_decoder() {
        use std::io::{Read, Write};
        let mut info = lz4_flex::frame::FrameInfo::new();
        info.block_size = lz4_flex::frame::BlockSize::Max64KB;
        info.block_mode = lz4_flex::frame::BlockMode::Independent;
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(b"x").expect("write");
        let theirs = enc.finish().expect("frame");
        assert_eq!(theirs[..7], LZ4_FRAME_HEADER);
        // Compressible text, incompressible noise, several blocks, an
        // empty input.
        let mut x = 7u64;
        let noise: Vec<u8> = (0..150_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let text = b"{\"schema\":{\"type\":\"struct\"}}".repeat(9000);
        for input in [&noise[..], &text[..], &[][..], &noise[..10]] {
            let mut out = Vec::new();
            lz4_frame(input, &mut out, &mut Vec::new()).expect("compress");
            let mut back = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&out[..])
                .read_to_end(&mut back)
                .expect("a valid frame");
            assert!(
                back == input,
                "{} bytes differ after a round trip",
                input.len()
            );
        }
    }

    #[test]
    fn random_answers_never_panic() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            // Mostly small numbers, so lengths and counts are plausible.
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => 0xff,
                    1 => (next() % 256) as u8,
                    _ => (next() % 3) as u8,
                })
                .collect();
            decode_all(Bytes::from(bytes));
        }
    }

    #[test]
    fn huge_array_lengths_are_refused_before_allocating() {
        let mut b = BytesMut::new();
        b.put_i32(0);
        b.put_i32(i32::MAX);
        let e = metadata(b.freeze()).expect_err("cannot hold that many brokers");
        assert!(e.to_string().contains("brokers"), "{e}");
    }

    #[test]
    fn a_batch_has_the_v2_layout_and_a_valid_crc() {
        let mut b = BatchBuilder::new(64);
        b.push(1000, Some(b"k"), Some(b"v"), &[]);
        b.push(1005, None, None, &[("h", Some(b"x"))]);
        let mut out = Vec::new();
        b.finish(
            Compression::None,
            (7, 1, 42),
            true,
            &mut out,
            &mut Vec::new(),
        )
        .expect("batch");
        assert_eq!(
            i32::from_be_bytes(out[8..12].try_into().expect("4")) as usize,
            out.len() - 12
        );
        assert_eq!(out[16], 2);
        let crc = u32::from_be_bytes(out[17..21].try_into().expect("4"));
        assert_eq!(crc, crc32c::crc32c(&out[21..]));
        assert_eq!(i16::from_be_bytes([out[21], out[22]]), 0x10);
        assert_eq!(i32::from_be_bytes(out[23..27].try_into().expect("4")), 1);
        assert_eq!(i64::from_be_bytes(out[27..35].try_into().expect("8")), 1000);
        assert_eq!(i64::from_be_bytes(out[35..43].try_into().expect("8")), 1005);
        assert_eq!(i64::from_be_bytes(out[43..51].try_into().expect("8")), 7);
        assert_eq!(i32::from_be_bytes(out[53..57].try_into().expect("4")), 42);
        assert_eq!(i32::from_be_bytes(out[57..61].try_into().expect("4")), 2);
        // First record: length 7+1.. = attributes, ts delta 0, offset delta 0,
        // key len 1 "k", value len 1 "v", 0 headers.
        assert_eq!(
            &out[61..],
            &[16, 0, 0, 0, 2, b'k', 2, b'v', 0, 20, 0, 10, 2, 1, 1, 2, 2, b'h', 2, b'x'][..]
        );
        let mut lz = Vec::new();
        b.finish(
            Compression::Lz4,
            (7, 1, 42),
            false,
            &mut lz,
            &mut Vec::new(),
        )
        .expect("lz4 batch");
        assert_eq!(i16::from_be_bytes([lz[21], lz[22]]), 3);
        let records = lz4_flex::frame::FrameDecoder::new(&lz[61..]);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut { records }, &mut plain).expect("valid frame");
        assert_eq!(plain, out[61..]);
    }
}
