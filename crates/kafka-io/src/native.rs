//! The native transactional producer: Kafka's protocol spoken directly
//! over Tokio TCP, for the exactly-once source's hot path.
//!
//! librdkafka handles every record several times on its way out — a copy
//! into its message, queues between threads, per-message staging into
//! the compressor, a delivery report back — which cost about half of the
//! source's CPU per row. Here a record is written once, in its final
//! format, into its partition's batch ([`wire::BatchBuilder`]); a batch is
//! compressed once when it is sent, and acknowledged as a whole.
//!
//! ```text
//!  caller (send) ──append──▶ Accumulator (per partition: open batch) ──seal (full / linger)──▶ ready
//!                                                                                          │
//!  Sender task: AddPartitionsToTxn for new partitions, then Produce (≤ 5 requests in flight
//!  per broker, one batch per partition per request, idempotent sequence numbers), retries
//!  after leader changes and lost connections (same sequence numbers), EndTxn on commit/abort.
//! ```
//!
//! It speaks PLAINTEXT only, with LZ4 or no compression; any other setting
//! (TLS, SASL, another codec, a librdkafka property it does not know)
//! leaves the producer to librdkafka ([`Settings::from_config`] says which
//! key decided it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::error::{Error, Result};
use crate::producer::Record;
use crate::wire::{self, Api, BatchBuilder, Compression, Severity, TopicBatches};

/// What the native producer was configured with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    bootstrap: Vec<String>,
    client_id: String,
    compression: Compression,
    linger: Duration,
    batch_bytes: usize,
    batch_records: usize,
    buffer_bytes: usize,
    max_request_bytes: usize,
    request_timeout: Duration,
    delivery_timeout: Duration,
    transaction_timeout_ms: i32,
    retry_backoff: Duration,
}

fn number(c: &ClientConfig, key: &str, default: u64) -> std::result::Result<u64, String> {
    match c.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("`{key}` is not a non-negative integer")),
    }
}

impl Settings {
    /// The settings of a librdkafka producer config, or why the native
    /// producer cannot honour it (a key and its value, or an unknown key).
    pub(crate) fn from_config(c: &ClientConfig) -> std::result::Result<Self, String> {
        let lower = |k: &str| c.get(k).map(|v| v.trim().to_ascii_lowercase());
        for (k, v) in c.config_map() {
            let v = v.trim().to_ascii_lowercase();
            let ok = match k {
                "bootstrap.servers" | "client.id" | "transactional.id" => true,
                "security.protocol" => v == "plaintext",
                "compression.type" | "compression.codec" => v == "none" || v == "lz4",
                "acks" | "request.required.acks" => v == "all" || v == "-1",
                "enable.idempotence" => v == "true",
                "partitioner" => v == "murmur2_random",
                // Sizes and times the native producer reads below.
                "linger.ms"
                | "queue.buffering.max.ms"
                | "batch.size"
                | "batch.num.messages"
                | "queue.buffering.max.kbytes"
                | "queue.buffering.max.messages"
                | "message.max.bytes"
                | "request.timeout.ms"
                | "message.timeout.ms"
                | "delivery.timeout.ms"
                | "transaction.timeout.ms"
                | "retry.backoff.ms" => true,
                // librdkafka tuning with no meaning here.
                "reconnect.backoff.ms"
                | "reconnect.backoff.max.ms"
                | "message.copy.max.bytes"
                | "socket.keepalive.enable"
                | "socket.nagle.disable"
                | "retries"
                | "message.send.max.retries"
                | "max.in.flight"
                | "max.in.flight.requests.per.connection"
                | "statistics.interval.ms"
                | "log.connection.close"
                | "api.version.request" => true,
                _ => false,
            };
            if !ok {
                return Err(if crate::config::is_sensitive(k) {
                    format!("`{k}` is set")
                } else {
                    format!("`{k}={v}`")
                });
            }
        }
        let bootstrap: Vec<String> = c
            .get("bootstrap.servers")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if bootstrap.is_empty() {
            return Err("`bootstrap.servers` is empty".into());
        }
        // librdkafka's aliases: the first one set wins.
        let either =
            |a: &str, b: &str, default| number(c, if c.get(a).is_some() { a } else { b }, default);
        let linger = either("linger.ms", "queue.buffering.max.ms", 5)?;
        let delivery = either("delivery.timeout.ms", "message.timeout.ms", 300_000)?;
        let txn_timeout = number(c, "transaction.timeout.ms", 60_000)?;
        Ok(Self {
            bootstrap,
            client_id: c.get("client.id").unwrap_or("pg-cdc").to_string(),
            compression: match lower("compression.type").or_else(|| lower("compression.codec")) {
                Some(v) if v == "none" => Compression::None,
                _ => Compression::Lz4,
            },
            linger: Duration::from_millis(linger),
            batch_bytes: number(c, "batch.size", 1_000_000)?.max(1) as usize,
            batch_records: number(c, "batch.num.messages", 10_000)?.max(1) as usize,
            buffer_bytes: (number(c, "queue.buffering.max.kbytes", 1_048_576)? as usize)
                .saturating_mul(1024)
                .max(1),
            max_request_bytes: number(c, "message.max.bytes", 1_000_000)?.max(1024) as usize,
            request_timeout: Duration::from_millis(number(c, "request.timeout.ms", 30_000)?),
            delivery_timeout: Duration::from_millis(delivery),
            transaction_timeout_ms: i32::try_from(txn_timeout)
                .map_err(|_| "`transaction.timeout.ms` is too large".to_string())?,
            retry_backoff: Duration::from_millis(number(c, "retry.backoff.ms", 100)?.min(1000)),
        })
    }
}

fn protocol(operation: &'static str, detail: impl Into<String>) -> Error {
    Error::Protocol {
        operation,
        detail: detail.into(),
    }
}

fn txn_error(operation: &'static str, code: i16, severity: Severity, detail: &str) -> Error {
    Error::NativeTransaction {
        operation,
        requires_abort: severity == Severity::Abortable,
        fatal: severity == Severity::Fatal,
        code: wire::rd_code(code),
        detail: format!(
            "; the broker answered {}{}{detail}",
            wire::error_name(code),
            if detail.is_empty() { "" } else { ": " }
        ),
    }
}

// ---------------------------------------------------------------- connection

type Reply = oneshot::Sender<Result<Bytes>>;

const UNREACHABLE: &str =
    " (check that `bootstrap.servers` names running brokers reachable from here, \
     and that their listener is PLAINTEXT)";

/// One TCP connection to a broker: requests are written in order by a
/// writer task, answers matched to them in order by a reader task.
#[derive(Debug, Clone)]
struct Conn {
    addr: Arc<str>,
    tx: mpsc::UnboundedSender<(BytesMut, i32, Reply)>,
    next_id: Arc<AtomicI32>,
    client_id: Arc<str>,
}

impl Conn {
    async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                protocol(
                    "connect",
                    format!("{addr}: no answer within {timeout:?}{UNREACHABLE}"),
                )
            })?
            .map_err(|e| protocol("connect", format!("{addr}: {e}{UNREACHABLE}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| protocol("connect", format!("{addr}: {e}")))?;
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<(BytesMut, i32, Reply)>();
        let line: Arc<Mutex<Line>> = Arc::default();
        let died = Arc::new(Notify::new());
        let addr: Arc<str> = addr.into();
        {
            let (line, died, addr) = (line.clone(), died.clone(), addr.clone());
            tokio::spawn(async move {
                loop {
                    let (frame, id, reply) = tokio::select! {
                        m = rx.recv() => match m {
                            Some(m) => m,
                            None => break,
                        },
                        // The reader saw the connection end: stop taking
                        // requests, so the connection reads as closed.
                        () = died.notified() => break,
                    };
                    {
                        let mut l = lock(&line);
                        if let Some(why) = &l.dead {
                            let _ = reply.send(Err(protocol("connection", why.clone())));
                            continue;
                        }
                        l.pending.push_back((id, reply));
                    }
                    if let Err(e) = wr.write_all(&frame).await {
                        kill(&line, format!("{addr}: writing a request failed: {e}"));
                        break;
                    }
                }
                let _ = wr.shutdown().await;
            });
        }
        {
            let (line, addr) = (line.clone(), addr.clone());
            tokio::spawn(async move {
                let why = loop {
                    let size = match rd.read_i32().await {
                        Ok(n) => n,
                        Err(e) => break format!("{addr}: connection closed: {e}"),
                    };
                    if !(4..=256 << 20).contains(&size) {
                        break format!("{addr}: answer of impossible size {size}");
                    }
                    let mut buf = BytesMut::zeroed(size as usize);
                    if let Err(e) = rd.read_exact(&mut buf).await {
                        break format!("{addr}: connection closed mid-answer: {e}");
                    }
                    let (id, body) = match wire::split_response(buf.freeze()) {
                        Ok(x) => x,
                        Err(e) => break format!("{addr}: {e}"),
                    };
                    let Some((want, reply)) = lock(&line).pending.pop_front() else {
                        break format!("{addr}: answer {id} to no request");
                    };
                    if want != id {
                        let why = format!("{addr}: answer {id} where {want} was due");
                        let _ = reply.send(Err(protocol("connection", why.clone())));
                        break why;
                    }
                    let _ = reply.send(Ok(body));
                };
                kill(&line, why);
                died.notify_one();
            });
        }
        let conn = Conn {
            addr: addr.clone(),
            tx,
            next_id: Arc::new(AtomicI32::new(1)),
            client_id: client_id.into(),
        };
        conn.check_versions(timeout).await?;
        Ok(conn)
    }

    /// Sends a request; the future resolves to the answer's body.
    fn call(
        &self,
        api: Api,
        body: impl FnOnce(&mut BytesMut),
    ) -> impl Future<Output = Result<Bytes>> + Send + 'static {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::with_capacity(64);
        wire::request(&mut frame, api, id, &self.client_id, body);
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.send((frame, id, reply)).is_ok();
        let addr = self.addr.clone();
        async move {
            if !sent {
                return Err(protocol("connection", format!("{addr}: connection closed")));
            }
            answer
                .await
                .map_err(|_| protocol("connection", format!("{addr}: connection closed")))?
        }
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn call_timeout(
        &self,
        api: Api,
        timeout: Duration,
        body: impl FnOnce(&mut BytesMut),
    ) -> Result<Bytes> {
        tokio::time::timeout(timeout, self.call(api, body))
            .await
            .map_err(|_| Error::Timeout {
                operation: api.name,
                after: timeout,
            })?
    }

    /// Fails unless the broker speaks every request version used here.
    async fn check_versions(&self, timeout: Duration) -> Result<()> {
        let body = self
            .call_timeout(wire::API_VERSIONS, timeout, |_| {})
            .await?;
        let (error, ranges) = wire::api_versions(body)?;
        if error != 0 {
            return Err(protocol(
                "ApiVersions",
                format!("{}: broker answered {}", self.addr, wire::error_name(error)),
            ));
        }
        for api in wire::USED {
            let ok = ranges
                .iter()
                .any(|(k, lo, hi)| *k == api.key && (*lo..=*hi).contains(&api.version));
            if !ok {
                return Err(protocol(
                    "ApiVersions",
                    format!(
                        "{}: the broker does not speak {} v{} (set producer.engine=librdkafka)",
                        self.addr, api.name, api.version
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A connection's requests awaiting answers, in order, and why it ended.
#[derive(Debug, Default)]
struct Line {
    pending: VecDeque<(i32, Reply)>,
    dead: Option<String>,
}

/// Ends a connection: every request waiting on it, and every later one,
/// fails with `why`.
fn kill(line: &Mutex<Line>, why: String) {
    let mut l = lock(line);
    for (_, reply) in l.pending.drain(..) {
        let _ = reply.send(Err(protocol("connection", why.clone())));
    }
    l.dead.get_or_insert(why);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// --------------------------------------------------------------- accumulator

type Tp = (Arc<str>, i32);

#[derive(Debug)]
struct Open {
    batch: BatchBuilder,
    since: Instant,
}

/// What callers and the sender task share.
#[derive(Debug, Default)]
struct Acc {
    open: HashMap<Tp, Open>,
    ready: Vec<(Tp, BatchBuilder)>,
    /// Bytes of records appended and not yet acknowledged.
    buffered: usize,
    /// Partition counts of topics seen, and when they were read.
    topics: HashMap<Arc<str>, (i32, Instant)>,
    /// Buffers of acknowledged batches, for the next ones (a fresh 1 MB
    /// buffer is a new mapping, faulted in page by page: 440k page faults
    /// per 500k rows before this).
    free: Vec<BatchBuilder>,
    rng: u64,
    /// Set when the producer cannot go on (fenced, or its task ended).
    fatal: Option<(RDKafkaErrorCode, String)>,
}

#[derive(Debug)]
struct Shared {
    settings: Settings,
    transactional_id: String,
    acc: Mutex<Acc>,
    /// The sender task: something was sealed, or a batch opened.
    wake: Notify,
    /// Callers: buffer space was freed.
    space: Notify,
}

enum Cmd {
    Partitions(Arc<str>, oneshot::Sender<Result<i32>>),
    End(bool, oneshot::Sender<Result<()>>),
}

/// The native transactional producer (see the module docs).
#[derive(Debug)]
pub(crate) struct NativeTxn {
    shared: Arc<Shared>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl NativeTxn {
    /// Connects, finds the transaction coordinator and initialises the
    /// producer id (fencing older instances of `transactional_id` and
    /// aborting their open transaction).
    ///
    /// `with_every_transaction` is added to each transaction together with
    /// its first partitions (the position record's partition, written at
    /// every commit: adding it then cost a coordinator round trip on the
    /// commit's path, 169 of them per 500k rows).
    pub(crate) async fn new(
        settings: Settings,
        transactional_id: &str,
        with_every_transaction: Option<(&str, i32)>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            settings,
            transactional_id: transactional_id.to_string(),
            acc: Mutex::new(Acc {
                rng: 0x2545_f491_4f6c_dd1d
                    ^ u64::from(std::process::id())
                    ^ now_ms().unsigned_abs().rotate_left(32),
                ..Acc::default()
            }),
            wake: Notify::new(),
            space: Notify::new(),
        });
        let mut task = Sender::new(shared.clone());
        task.always = with_every_transaction.map(|(t, p)| (Arc::from(t), p));
        task.connect_any().await?;
        task.init_producer_id().await?;
        let (cmd, rx) = mpsc::unbounded_channel();
        tokio::spawn(task.run(rx));
        Ok(Self { shared, cmd })
    }

    fn failed(&self) -> Option<Error> {
        lock(&self.shared.acc)
            .fatal
            .as_ref()
            .map(|(code, detail)| Error::NativeTransaction {
                operation: "send",
                requires_abort: false,
                fatal: true,
                code: *code,
                detail: detail.clone(),
            })
    }

    /// The topic's partition count, from metadata at most
    /// [`METADATA_MAX_AGE`] old (the Java client's `metadata.max.age.ms`).
    async fn partitions(&self, topic: &str) -> Result<(Arc<str>, i32)> {
        if let Some((t, (n, at))) = lock(&self.shared.acc).topics.get_key_value(topic) {
            if at.elapsed() < METADATA_MAX_AGE {
                return Ok((t.clone(), *n));
            }
        }
        let topic: Arc<str> = topic.into();
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Partitions(topic.clone(), tx))
            .map_err(|_| Error::Closed {
                component: "native producer",
            })?;
        let n = rx.await.map_err(|_| Error::Closed {
            component: "native producer",
        })??;
        lock(&self.shared.acc)
            .topics
            .insert(topic.clone(), (n, Instant::now()));
        Ok((topic, n))
    }

    /// Appends a record to its partition's batch (waits while the buffer
    /// is full).
    pub(crate) async fn send(&self, r: &Record<'_>) -> Result<()> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let s = &self.shared.settings;
        let size = r.key.map_or(0, <[u8]>::len)
            + r.value.map_or(0, <[u8]>::len)
            + r.headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
            + 64;
        if size > s.max_request_bytes {
            return Err(Error::Delivery {
                seq: 0,
                topic: r.topic.to_string(),
                code: RDKafkaErrorCode::MessageSizeTooLarge,
                message: format!(
                    "a record of {size} bytes is larger than message.max.bytes ({})",
                    s.max_request_bytes
                ),
            });
        }
        let (topic, count) = self.partitions(r.topic).await?;
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref()))
            .collect();
        let ts = r.timestamp.unwrap_or_else(now_ms);
        loop {
            let notified = self.shared.space.notified();
            {
                let mut acc = lock(&self.shared.acc);
                if acc.buffered < s.buffer_bytes || acc.buffered == 0 {
                    let partition = match (r.partition, r.key) {
                        (Some(p), _) => p,
                        (None, Some(k)) => (murmur2(k) & 0x7fff_ffff) % count,
                        (None, None) => {
                            acc.rng ^= acc.rng << 13;
                            acc.rng ^= acc.rng >> 7;
                            acc.rng ^= acc.rng << 17;
                            (acc.rng % count as u64) as i32
                        }
                    };
                    if !(0..count).contains(&partition) {
                        return Err(Error::Delivery {
                            seq: 0,
                            topic: r.topic.to_string(),
                            code: RDKafkaErrorCode::UnknownPartition,
                            message: format!("{} has {count} partitions, not {partition}", r.topic),
                        });
                    }
                    let tp = (topic.clone(), partition);
                    let Acc {
                        open,
                        ready,
                        free,
                        buffered,
                        ..
                    } = &mut *acc;
                    let fresh = |free: &mut Vec<BatchBuilder>| Open {
                        batch: free.pop().unwrap_or_else(|| {
                            BatchBuilder::new(s.batch_bytes.min(1 << 20) + 4096)
                        }),
                        since: Instant::now(),
                    };
                    let mut wake = false;
                    let slot = open.entry(tp.clone()).or_insert_with(|| {
                        wake = true;
                        fresh(free)
                    });
                    // A record that would take a non-empty batch over
                    // `batch.size` starts the next one (the broker refuses
                    // batches over the topic's `max.message.bytes`).
                    if slot.batch.len() > 0 && slot.batch.size() + size > s.batch_bytes {
                        let full = std::mem::replace(slot, fresh(free));
                        ready.push((tp.clone(), full.batch));
                        wake = true;
                    }
                    let before = slot.batch.size();
                    slot.batch.push(ts, r.key, r.value, &headers);
                    *buffered += slot.batch.size() - before;
                    if slot.batch.size() >= s.batch_bytes || slot.batch.len() >= s.batch_records {
                        if let Some(o) = open.remove(&tp) {
                            ready.push((tp, o.batch));
                        }
                        wake = true;
                    }
                    drop(acc);
                    if wake {
                        self.shared.wake.notify_one();
                    }
                    return Ok(());
                }
            }
            notified.await;
            if let Some(e) = self.failed() {
                return Err(e);
            }
        }
    }

    /// Seals every open batch and ends the transaction: commits it once
    /// every record is acknowledged, or aborts it.
    pub(crate) async fn end(&self, commit: bool) -> Result<()> {
        {
            let mut acc = lock(&self.shared.acc);
            let open: Vec<(Tp, Open)> = acc.open.drain().collect();
            acc.ready
                .extend(open.into_iter().map(|(tp, o)| (tp, o.batch)));
        }
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::End(commit, tx))
            .map_err(|_| Error::Closed {
                component: "native producer",
            })?;
        self.shared.wake.notify_one();
        rx.await.map_err(|_| Error::Closed {
            component: "native producer",
        })?
    }
}

/// How long a topic's partition count is used before it is read again.
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Kafka's `Utils.murmur2` (the Java client's key partitioner).
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const M: i32 = 0x5bd1_e995;
    let mut h: i32 = (0x9747_b28c_u32 as i32) ^ (data.len() as i32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= i32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= i32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= i32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(M);
    h ^= ((h as u32) >> 15) as i32;
    h
}

// ---------------------------------------------------------------- sender task

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    Queued,
    InFlight,
    Acked,
}

#[derive(Debug)]
struct Batch {
    records: BatchBuilder,
    /// The encoded batch (with its sequence number), kept for retries.
    encoded: Option<Bytes>,
    state: State,
    /// When the sender took it (`message.timeout.ms` counts from here).
    created: Instant,
}

#[derive(Debug, Default)]
struct Partition {
    batches: VecDeque<Batch>,
    next_seq: i32,
    in_flight: usize,
    /// After a retriable failure: resend from the first unacknowledged
    /// batch once nothing is in flight and this time has come.
    retry_at: Option<Instant>,
    leader: Option<i32>,
}

type Pending = Pin<Box<dyn Future<Output = (i32, Vec<Tp>, Result<Bytes>)> + Send>>;

struct Sender {
    shared: Arc<Shared>,
    brokers: HashMap<i32, String>,
    conns: HashMap<i32, Conn>,
    bootstrap: Option<Conn>,
    coordinator: Option<Conn>,
    producer_id: i64,
    epoch: i16,
    parts: HashMap<Tp, Partition>,
    in_flight: FuturesUnordered<Pending>,
    per_broker: HashMap<i32, usize>,
    /// Partitions added to the open transaction.
    added: HashSet<Tp>,
    /// Partitions being added (one request at a time).
    adding: Option<Pin<Box<dyn Future<Output = Result<Bytes>> + Send>>>,
    adding_tps: Vec<Tp>,
    add_retry_at: Option<Instant>,
    /// A transaction end waiting for the last acknowledgements.
    ending: Option<(bool, oneshot::Sender<Result<()>>)>,
    /// The open transaction's first error (the transaction must abort).
    error: Option<Error>,
    /// Sequence numbers were handed out for batches never acknowledged:
    /// the next transaction needs a new epoch.
    dirty: bool,
    metadata_stale: bool,
    scratch: Vec<u8>,
    stats: Stats,
    add_since: Option<Instant>,
    end_since: Option<Instant>,
    /// Added to every transaction with its first partitions.
    always: Option<Tp>,
    /// The LZ4 compressor's output block, reused.
    lz4_block: Vec<u8>,
}

/// What the sender did in the current transaction (logged at `debug`
/// when it ends).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    /// AddPartitionsToTxn requests, and those answered "retry".
    adds: u64,
    add_retries: u64,
    /// From the first partition waiting to be added to the last added.
    add_wait: Duration,
    /// From the transaction end asked to the last acknowledgement.
    end_wait: Duration,
    requests: u64,
    batches: u64,
    records: u64,
    raw_bytes: u64,
    wire_bytes: u64,
}

const MAX_IN_FLIGHT: usize = 5;

/// Wait before adding partitions again after `CONCURRENT_TRANSACTIONS`
/// (the coordinator still writing the previous transaction's markers).
const ADD_RETRY: Duration = Duration::from_millis(5);

impl Sender {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            brokers: HashMap::new(),
            conns: HashMap::new(),
            bootstrap: None,
            coordinator: None,
            producer_id: -1,
            epoch: -1,
            parts: HashMap::new(),
            in_flight: FuturesUnordered::new(),
            per_broker: HashMap::new(),
            added: HashSet::new(),
            adding: None,
            adding_tps: Vec::new(),
            add_retry_at: None,
            ending: None,
            error: None,
            dirty: false,
            metadata_stale: false,
            scratch: Vec::new(),
            stats: Stats::default(),
            add_since: None,
            end_since: None,
            always: None,
            lz4_block: Vec::new(),
        }
    }

    fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// A live connection to any broker (known ones first, then bootstrap).
    async fn connect_any(&mut self) -> Result<Conn> {
        if let Some(c) = self.conns.values().find(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        if let Some(c) = self.bootstrap.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let timeout = self.settings().request_timeout.min(Duration::from_secs(10));
        let mut last = None;
        let mut addrs: Vec<String> = self.brokers.values().cloned().collect();
        addrs.extend(self.settings().bootstrap.iter().cloned());
        for addr in addrs {
            match Conn::connect(&addr, &self.settings().client_id, timeout).await {
                Ok(c) => {
                    self.bootstrap = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| protocol("connect", "no bootstrap server")))
    }

    async fn broker(&mut self, id: i32) -> Result<Conn> {
        if let Some(c) = self.conns.get(&id).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let addr = match self.brokers.get(&id) {
            Some(a) => a.clone(),
            None => {
                self.refresh(&[]).await?;
                self.brokers
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| protocol("Metadata", format!("broker {id} is unknown")))?
            }
        };
        let timeout = self.settings().request_timeout.min(Duration::from_secs(10));
        let c = Conn::connect(&addr, &self.settings().client_id, timeout).await?;
        self.conns.insert(id, c.clone());
        Ok(c)
    }

    /// Metadata for `topics` (and the broker list); updates leaders.
    async fn refresh(&mut self, topics: &[&str]) -> Result<Vec<wire::TopicInfo>> {
        let conn = self.connect_any().await?;
        let timeout = self.settings().request_timeout;
        let body = conn
            .call_timeout(wire::METADATA, timeout, |b| {
                wire::metadata_request(b, topics)
            })
            .await;
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                self.bootstrap = None;
                return Err(e);
            }
        };
        let (brokers, infos) = wire::metadata(body)?;
        for b in brokers {
            self.brokers
                .insert(b.node_id, format!("{}:{}", b.host, b.port));
        }
        for t in &infos {
            let name: Arc<str> = t.name.as_str().into();
            for (p, _, leader) in &t.partitions {
                if let Some(part) = self.parts.get_mut(&(name.clone(), *p)) {
                    part.leader = (*leader >= 0).then_some(*leader);
                }
            }
        }
        Ok(infos)
    }

    async fn partition_count(&mut self, topic: &str) -> Result<i32> {
        let deadline = Instant::now() + self.settings().request_timeout;
        loop {
            let infos = self.refresh(&[topic]).await;
            let (code, detail) = match infos {
                Ok(infos) => match infos.iter().find(|t| t.name == topic) {
                    Some(t) if t.error == 0 && !t.partitions.is_empty() => {
                        return Ok(t.partitions.len() as i32)
                    }
                    Some(t) => (t.error, wire::error_name(t.error).to_string()),
                    None => (3, "not in the answer".into()),
                },
                Err(e) if Instant::now() < deadline => (-1, e.to_string()),
                Err(e) => return Err(e),
            };
            // A topic created a moment ago may not have reached this
            // broker's metadata yet.
            if Instant::now() >= deadline || !wire::is_retriable(code) {
                return Err(Error::Delivery {
                    seq: 0,
                    topic: topic.to_string(),
                    code: wire::rd_code(code),
                    message: format!("metadata of {topic}: {detail}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find_coordinator(&mut self) -> Result<Conn> {
        if let Some(c) = self.coordinator.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let deadline = Instant::now() + self.settings().request_timeout;
        loop {
            let conn = self.connect_any().await?;
            let id = self.shared.transactional_id.clone();
            let answer = conn
                .call_timeout(
                    wire::FIND_COORDINATOR,
                    self.settings().request_timeout,
                    |b| wire::find_coordinator_request(b, &id),
                )
                .await;
            let (code, message, broker) = match answer {
                Ok(b) => wire::find_coordinator(b)?,
                Err(e) => {
                    self.bootstrap = None;
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(self.settings().retry_backoff).await;
                    continue;
                }
            };
            if code == 0 {
                self.brokers
                    .insert(broker.node_id, format!("{}:{}", broker.host, broker.port));
                let c = self.broker(broker.node_id).await?;
                self.coordinator = Some(c.clone());
                return Ok(c);
            }
            if !wire::is_retriable(code) || Instant::now() >= deadline {
                return Err(txn_error(
                    "init",
                    code,
                    wire::severity(code),
                    &message.unwrap_or_default(),
                ));
            }
            tokio::time::sleep(self.settings().retry_backoff).await;
        }
    }

    /// `InitProducerId`: a new epoch; sequence numbers start over.
    async fn init_producer_id(&mut self) -> Result<()> {
        let deadline =
            Instant::now() + self.settings().request_timeout.max(Duration::from_secs(30));
        loop {
            let conn = self.find_coordinator().await?;
            let id = self.shared.transactional_id.clone();
            let timeout_ms = self.settings().transaction_timeout_ms;
            let answer = conn
                .call_timeout(
                    wire::INIT_PRODUCER_ID,
                    self.settings().request_timeout,
                    |b| wire::init_producer_id_request(b, &id, timeout_ms),
                )
                .await;
            let code = match answer {
                Ok(b) => {
                    let (code, pid, epoch) = wire::init_producer_id(b)?;
                    if code == 0 {
                        self.producer_id = pid;
                        self.epoch = epoch;
                        for p in self.parts.values_mut() {
                            p.next_seq = 0;
                        }
                        self.dirty = false;
                        return Ok(());
                    }
                    code
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("InitProducerId: {e}; retrying");
                    self.coordinator = None;
                    -1
                }
                Err(e) => return Err(e),
            };
            if matches!(code, 15 | 16) {
                self.coordinator = None;
            }
            if !(wire::is_retriable(code) || code == -1) || Instant::now() >= deadline {
                return Err(txn_error("init", code, Severity::Fatal, ""));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let shared = self.shared.clone();
        loop {
            let linger_due = self.take_batches();
            self.start_add();
            if let Err(e) = self.dispatch().await {
                self.fail_open(e);
            }
            self.check_timeouts();
            self.try_end().await;
            // Partitions waiting for answers are woken by them; a retry
            // is due only once nothing of its partition is in flight.
            let next_retry = self
                .parts
                .values()
                .filter(|p| p.in_flight == 0)
                .filter_map(|p| p.retry_at)
                .chain(self.add_retry_at.filter(|_| self.adding.is_none()))
                .min();
            // Work that no answer will wake (a leader or coordinator not
            // found, a broker not reachable): look again after a backoff,
            // which also lets `message.timeout.ms` expire.
            let stalled = self.in_flight.is_empty()
                && self.adding.is_none()
                && (self.ending.is_some() || self.parts.values().any(|p| !p.batches.is_empty()));
            let poll_again = stalled.then(|| Instant::now() + self.settings().retry_backoff);
            let wake_at = [linger_due, next_retry, poll_again]
                .into_iter()
                .flatten()
                .min()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    None => break,
                    Some(Cmd::Partitions(topic, reply)) => {
                        let r = self.partition_count(&topic).await;
                        let _ = reply.send(r);
                    }
                    Some(Cmd::End(commit, reply)) => {
                        self.end_since = Some(Instant::now());
                        if let Some((_, earlier)) = self.ending.replace((commit, reply)) {
                            let _ = earlier.send(Err(Error::Closed { component: "transaction" }));
                        }
                    }
                },
                Some((broker, tps, answer)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.answered(broker, tps, answer);
                }
                answer = async { self.adding.as_mut().expect("checked").await }, if self.adding.is_some() => {
                    self.adding = None;
                    self.added_answer(answer);
                }
                _ = shared.wake.notified() => {}
                _ = async {
                    match wake_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        // Dropped: whatever is open is aborted by the coordinator (timeout)
        // or by the next instance's InitProducerId.
        lock(&self.shared.acc).fatal = Some((
            RDKafkaErrorCode::Fatal,
            "; the producer's sender task ended".into(),
        ));
        self.shared.space.notify_waiters();
    }

    /// Takes the batches callers sealed, then seals those open longer than
    /// `linger.ms` (under one lock, so a partition's batches keep their
    /// order); returns when the next open batch is due.
    fn take_batches(&mut self) -> Option<Instant> {
        let linger = self.settings().linger;
        let now = Instant::now();
        let mut acc = lock(&self.shared.acc);
        let mut take = |tp: Tp, records: BatchBuilder| {
            self.parts.entry(tp).or_default().batches.push_back(Batch {
                records,
                encoded: None,
                state: State::Queued,
                created: now,
            });
        };
        for (tp, records) in std::mem::take(&mut acc.ready) {
            take(tp, records);
        }
        let due: Vec<Tp> = acc
            .open
            .iter()
            .filter(|(_, o)| o.since + linger <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            if let Some(o) = acc.open.remove(&tp) {
                take(tp, o.batch);
            }
        }
        acc.open.values().map(|o| o.since + linger).min()
    }

    /// Adds the partitions with queued batches that are not in the
    /// transaction yet (one request at a time).
    fn start_add(&mut self) {
        if self.adding.is_some() || self.error.is_some() {
            return;
        }
        if self.add_retry_at.is_some_and(|t| t > Instant::now()) {
            return;
        }
        let mut want: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(tp, p)| !p.batches.is_empty() && !self.added.contains(*tp))
            .map(|(tp, _)| tp.clone())
            .collect();
        if want.is_empty() {
            return;
        }
        if let Some(tp) = &self.always {
            if !self.added.contains(tp) && !want.contains(tp) {
                want.push(tp.clone());
            }
        }
        let Some(conn) = self.coordinator.clone().filter(|c| !c.is_closed()) else {
            // Found again by the next dispatch round.
            self.adding = Some(Box::pin(async {
                Err(protocol("AddPartitionsToTxn", "no coordinator connection"))
            }));
            self.adding_tps = want;
            return;
        };
        let id = self.shared.transactional_id.clone();
        let (pid, epoch) = (self.producer_id, self.epoch);
        self.stats.adds += 1;
        self.add_since.get_or_insert_with(Instant::now);
        let list: Vec<(&str, i32)> = want.iter().map(|(t, p)| (&**t, *p)).collect();
        let timeout = self.settings().request_timeout;
        let fut = conn.call(wire::ADD_PARTITIONS_TO_TXN, |b| {
            wire::add_partitions_request(b, &id, pid, epoch, &list)
        });
        self.adding = Some(Box::pin(async move {
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| Error::Timeout {
                    operation: "AddPartitionsToTxn",
                    after: timeout,
                })?
        }));
        self.adding_tps = want;
    }

    fn added_answer(&mut self, answer: Result<Bytes>) {
        let tps = std::mem::take(&mut self.adding_tps);
        let results = match answer.and_then(wire::add_partitions) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("AddPartitionsToTxn: {e}; finding the coordinator again");
                self.coordinator = None;
                self.add_retry_at = Some(Instant::now() + self.settings().retry_backoff);
                return;
            }
        };
        let mut retry = false;
        for (topic, p, code) in results {
            let Some(tp) = tps.iter().find(|(t, i)| **t == *topic && *i == p) else {
                continue;
            };
            match code {
                0 => {
                    self.added.insert(tp.clone());
                }
                // The previous transaction's markers are still being
                // written (milliseconds), or the coordinator moved.
                c if wire::is_retriable(c) => {
                    if matches!(c, 15 | 16) {
                        self.coordinator = None;
                    }
                    retry = true;
                }
                // Not attempted because another partition failed.
                55 => retry = true,
                c => {
                    let e = txn_error(
                        "send",
                        c,
                        wire::severity(c),
                        &format!("adding {topic}[{p}] to the transaction"),
                    );
                    self.fail_open(e);
                    return;
                }
            }
        }
        if retry {
            self.stats.add_retries += 1;
            self.add_retry_at = Some(Instant::now() + ADD_RETRY);
        } else {
            self.add_retry_at = None;
            if let Some(t) = self.add_since.take() {
                self.stats.add_wait += t.elapsed();
            }
        }
    }

    /// Records the transaction's first error; its records are dropped
    /// (the transaction will be aborted), and the next one needs a new
    /// epoch if sequence numbers were handed out for them.
    fn fail_open(&mut self, e: Error) {
        mark_fatal(&self.shared, &e);
        if self.error.is_none() {
            tracing::warn!(transactional_id = %self.shared.transactional_id, "transaction failed: {e}");
            self.error = Some(e);
        }
        self.shared.space.notify_waiters();
    }

    /// Sends what can be sent: per broker up to [`MAX_IN_FLIGHT`]
    /// requests, each with at most one batch per partition, of partitions
    /// already in the transaction.
    async fn dispatch(&mut self) -> Result<()> {
        if self.error.is_some() {
            self.drop_unsent();
            return Ok(());
        }
        if self.coordinator.as_ref().is_none_or(Conn::is_closed) {
            if let Err(e) = self.find_coordinator().await {
                tracing::debug!("finding the coordinator: {e}");
            }
        }
        // Leaders of partitions with something to send, when unknown or
        // after an error that says they moved.
        let unknown = self
            .parts
            .values()
            .any(|p| p.leader.is_none() && !p.batches.is_empty());
        if unknown || self.metadata_stale {
            let mut names: Vec<Arc<str>> = self
                .parts
                .iter()
                .filter(|(_, p)| !p.batches.is_empty())
                .map(|((t, _), _)| t.clone())
                .collect();
            names.sort_unstable();
            names.dedup();
            let names: Vec<&str> = names.iter().map(|t| &**t).collect();
            match self.refresh(&names).await {
                Ok(_) => self.metadata_stale = false,
                Err(e) => tracing::debug!("metadata: {e}"),
            }
        }
        let now = Instant::now();
        // Partitions ready to send, by leader.
        let mut by_broker: HashMap<i32, Vec<Tp>> = HashMap::new();
        for (tp, p) in &mut self.parts {
            if !self.added.contains(tp) {
                continue;
            }
            if let Some(t) = p.retry_at {
                if t > now || p.in_flight > 0 {
                    continue;
                }
                p.retry_at = None;
            }
            if !p.batches.iter().any(|b| b.state == State::Queued) {
                continue;
            }
            if let Some(l) = p.leader {
                by_broker.entry(l).or_default().push(tp.clone());
            }
        }
        for (broker, mut tps) in by_broker {
            while self.per_broker.get(&broker).copied().unwrap_or(0) < MAX_IN_FLIGHT {
                let conn = match self.broker(broker).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!("connecting to broker {broker}: {e}");
                        for tp in &tps {
                            if let Some(p) = self.parts.get_mut(tp) {
                                p.retry_at =
                                    Some(Instant::now() + self.shared.settings.retry_backoff);
                            }
                        }
                        self.metadata_stale = true;
                        break;
                    }
                };
                let (topics, sent) = self.take_request(&mut tps)?;
                if sent.is_empty() {
                    break;
                }
                *self.per_broker.entry(broker).or_default() += 1;
                self.stats.requests += 1;
                let timeout = self.settings().request_timeout;
                let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                let id = &self.shared.transactional_id;
                let fut = conn.call(wire::PRODUCE, |b| {
                    wire::produce_request(b, Some(id), timeout_ms, &topics)
                });
                self.in_flight.push(Box::pin(async move {
                    let answer = tokio::time::timeout(timeout + Duration::from_secs(5), fut)
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::Timeout {
                                operation: "Produce",
                                after: timeout,
                            })
                        });
                    (broker, sent, answer)
                }));
            }
        }
        Ok(())
    }

    /// One Produce request's batches: the first queued batch of each
    /// partition in `tps` (encoded with its sequence number on its first
    /// send), up to the request size limit, by topic.
    fn take_request(&mut self, tps: &mut Vec<Tp>) -> Result<(Vec<TopicBatches>, Vec<Tp>)> {
        let shared = Arc::clone(&self.shared);
        let settings = &shared.settings;
        let mut by_topic: Vec<TopicBatches> = Vec::new();
        let mut sent = Vec::new();
        let mut total = 0usize;
        let mut failure = None;
        tps.retain(|tp| {
            let Some(p) = self.parts.get_mut(tp) else {
                return false;
            };
            let Some(i) = p.batches.iter().position(|b| b.state == State::Queued) else {
                return false;
            };
            let b = &mut p.batches[i];
            let bytes = match &b.encoded {
                Some(e) => e.clone(),
                None => {
                    let seq = p.next_seq;
                    if let Err(e) = b.records.finish(
                        settings.compression,
                        (self.producer_id, self.epoch, seq),
                        true,
                        &mut self.scratch,
                        &mut self.lz4_block,
                    ) {
                        failure = Some(e);
                        return false;
                    }
                    p.next_seq = p.next_seq.wrapping_add(b.records.len() as i32);
                    self.stats.batches += 1;
                    self.stats.records += b.records.len() as u64;
                    self.stats.raw_bytes += b.records.size() as u64;
                    self.stats.wire_bytes += self.scratch.len() as u64;
                    self.dirty = true;
                    let e = Bytes::copy_from_slice(&self.scratch);
                    b.encoded = Some(e.clone());
                    e
                }
            };
            if total > 0 && total + bytes.len() > settings.max_request_bytes.max(1 << 20) {
                return true;
            }
            total += bytes.len();
            b.state = State::InFlight;
            p.in_flight += 1;
            match by_topic.iter_mut().find(|(t, _)| *t == tp.0) {
                Some((_, v)) => v.push((tp.1, bytes)),
                None => by_topic.push((tp.0.clone(), vec![(tp.1, bytes)])),
            }
            sent.push(tp.clone());
            // Still has queued batches: stays for the next request.
            p.batches.iter().any(|b| b.state == State::Queued)
        });
        match failure {
            Some(e) => Err(e),
            None => Ok((by_topic, sent)),
        }
    }

    fn answered(&mut self, broker: i32, tps: Vec<Tp>, answer: Result<Bytes>) {
        if let Some(n) = self.per_broker.get_mut(&broker) {
            *n = n.saturating_sub(1);
        }
        let acks = match answer.and_then(wire::produce) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(broker, "Produce: {e}; resending");
                self.conns.remove(&broker);
                self.metadata_stale = true;
                for tp in &tps {
                    if let Some(p) = self.parts.get_mut(tp) {
                        p.in_flight = p.in_flight.saturating_sub(1);
                    }
                    self.requeue(tp);
                }
                return;
            }
        };
        let mut freed = 0usize;
        let mut done = Vec::new();
        for tp in &tps {
            let code = acks
                .iter()
                .find(|a| *a.topic == *tp.0 && a.partition == tp.1)
                .map_or(-1, |a| a.error);
            let Some(p) = self.parts.get_mut(tp) else {
                continue;
            };
            let Some(i) = p.batches.iter().position(|b| b.state == State::InFlight) else {
                continue;
            };
            p.in_flight = p.in_flight.saturating_sub(1);
            match code {
                // Written (46: by an earlier attempt of this very batch).
                0 | 46 => {
                    p.batches[i].state = State::Acked;
                    while p.batches.front().is_some_and(|b| b.state == State::Acked) {
                        if let Some(b) = p.batches.pop_front() {
                            freed += b.records.size();
                            done.push(b.records);
                        }
                    }
                }
                c if wire::is_retriable(c) || (c == 45 && p.retry_at.is_some()) => {
                    tracing::debug!(topic = %tp.0, partition = tp.1, error = wire::error_name(c), "produce retried");
                    if matches!(c, 3 | 5 | 6 | 74 | 75) {
                        self.metadata_stale = true;
                    }
                    self.requeue(tp);
                }
                c => {
                    let e = Error::Delivery {
                        seq: 0,
                        topic: tp.0.to_string(),
                        code: wire::rd_code(c),
                        message: format!(
                            "the broker refused a batch for partition {}: {}",
                            tp.1,
                            wire::error_name(c)
                        ),
                    };
                    if wire::severity(c) == Severity::Fatal {
                        self.fail_open(txn_error("send", c, Severity::Fatal, ""));
                    } else {
                        self.fail_open(e);
                    }
                    if let Some(p) = self.parts.get_mut(tp) {
                        p.batches[i].state = State::Acked;
                    }
                }
            }
        }
        if freed > 0 {
            let mut acc = lock(&self.shared.acc);
            acc.buffered = acc.buffered.saturating_sub(freed);
            recycle(&self.shared.settings, &mut acc, done);
            drop(acc);
            self.shared.space.notify_waiters();
        }
    }

    /// Marks the batch of a failed answer (a partition's first in flight:
    /// answers come in order) for resending with the same sequence number,
    /// once the partition's other requests are answered (they fail out of
    /// order, or were written and are acknowledged).
    fn requeue(&mut self, tp: &Tp) {
        let backoff = self.settings().retry_backoff.min(Duration::from_millis(50));
        if let Some(p) = self.parts.get_mut(tp) {
            // Only the first in-flight batch is this answer's; later ones
            // keep their own pending answers (which fail out of order).
            if let Some(b) = p.batches.iter_mut().find(|b| b.state == State::InFlight) {
                b.state = State::Queued;
            }
            p.retry_at = Some(Instant::now() + backoff);
        }
    }

    fn check_timeouts(&mut self) {
        let limit = self.settings().delivery_timeout;
        let now = Instant::now();
        let late = self.parts.iter().find_map(|(tp, p)| {
            p.batches
                .iter()
                .any(|b| now - b.created > limit)
                .then(|| tp.clone())
        });
        if let Some(tp) = late {
            if self.error.is_none() {
                self.fail_open(Error::Delivery {
                    seq: 0,
                    topic: tp.0.to_string(),
                    code: RDKafkaErrorCode::MessageTimedOut,
                    message: format!(
                        "partition {} not acknowledged within {limit:?} (message.timeout.ms)",
                        tp.1
                    ),
                });
            }
        }
    }

    /// Drops batches never sent (the transaction aborts).
    fn drop_unsent(&mut self) {
        let mut freed = 0;
        for p in self.parts.values_mut() {
            p.batches.retain(|b| {
                let keep = b.state == State::InFlight;
                if !keep {
                    freed += b.records.size();
                }
                keep
            });
            if p.in_flight == 0 {
                p.retry_at = None;
            }
        }
        let mut acc = lock(&self.shared.acc);
        for (_, o) in acc.open.drain() {
            freed += o.batch.size();
        }
        for (_, b) in std::mem::take(&mut acc.ready) {
            freed += b.size();
        }
        acc.buffered = acc.buffered.saturating_sub(freed);
        drop(acc);
        self.shared.space.notify_waiters();
    }

    /// Ends the transaction once nothing of it is left to acknowledge.
    async fn try_end(&mut self) {
        let Some((commit, _)) = &self.ending else {
            return;
        };
        let commit = *commit && self.error.is_none();
        if !commit {
            self.drop_unsent();
        }
        let busy = self.parts.values().any(|p| !p.batches.is_empty()) || self.adding.is_some() || {
            let acc = lock(&self.shared.acc);
            !acc.ready.is_empty() || !acc.open.is_empty()
        };
        if busy {
            return;
        }
        let Some((asked_commit, reply)) = self.ending.take() else {
            return;
        };
        let mut stats = std::mem::take(&mut self.stats);
        stats.end_wait = self
            .end_since
            .take()
            .map_or(Duration::ZERO, |t| t.elapsed());
        let end_txn = Instant::now();
        let result = self.end_txn(commit).await;
        tracing::debug!(
            commit,
            adds = stats.adds,
            add_retries = stats.add_retries,
            add_wait_ms = stats.add_wait.as_secs_f64() * 1e3,
            acks_wait_ms = stats.end_wait.as_secs_f64() * 1e3,
            end_txn_ms = end_txn.elapsed().as_secs_f64() * 1e3,
            requests = stats.requests,
            batches = stats.batches,
            records = stats.records,
            raw_bytes = stats.raw_bytes,
            wire_bytes = stats.wire_bytes,
            "native transaction ended"
        );
        // A commit that became an abort reports why.
        let result = match (asked_commit, self.error.take(), result) {
            (true, Some(e), Ok(())) => Err(e),
            (_, _, r) => r,
        };
        self.added.clear();
        self.add_retry_at = None;
        if !commit && self.dirty {
            // Sequence numbers of batches never written: start over.
            if let Err(e) = self.init_producer_id().await {
                let _ = reply.send(Err(e));
                return;
            }
        }
        let _ = reply.send(result);
    }

    async fn end_txn(&mut self, commit: bool) -> Result<()> {
        if self.added.is_empty() {
            // Nothing was added: the coordinator has no transaction open.
            self.dirty = false;
            return Ok(());
        }
        let deadline =
            Instant::now() + self.settings().request_timeout.max(Duration::from_secs(30));
        let op = if commit { "commit" } else { "abort" };
        loop {
            let conn = self.find_coordinator().await;
            let code = match conn {
                Ok(conn) => {
                    let id = self.shared.transactional_id.clone();
                    let (pid, epoch) = (self.producer_id, self.epoch);
                    match conn
                        .call_timeout(wire::END_TXN, self.settings().request_timeout, |b| {
                            wire::end_txn_request(b, &id, pid, epoch, commit)
                        })
                        .await
                        .and_then(wire::end_txn)
                    {
                        Ok(c) => c,
                        Err(e) if Instant::now() < deadline => {
                            tracing::debug!("EndTxn: {e}; retrying");
                            self.coordinator = None;
                            -1
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("EndTxn: {e}; retrying");
                    -1
                }
                Err(e) => return Err(e),
            };
            if code == 0 {
                if commit {
                    self.dirty = false;
                }
                return Ok(());
            }
            if matches!(code, 15 | 16) {
                self.coordinator = None;
            }
            if !(wire::is_retriable(code) || code == -1) || Instant::now() >= deadline {
                let e = txn_error(op, code, wire::severity(code), "");
                mark_fatal(&self.shared, &e);
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Keeps emptied batch buffers for reuse: as many as the buffer limit
/// (`queue.buffering.max.kbytes`) holds full batches, so in a steady
/// stream no batch gets a fresh buffer. Peak memory is the same (those
/// buffers were all in use at once); keeping only 8 of 16 left half the
/// page faults.
fn recycle(settings: &Settings, acc: &mut Acc, done: Vec<BatchBuilder>) {
    let keep = (settings.buffer_bytes / settings.batch_bytes).clamp(2, 64) + 2;
    for mut b in done {
        if acc.free.len() >= keep {
            break;
        }
        b.reset();
        acc.free.push(b);
    }
}

/// A fatal error ends the producer: later sends fail with it.
fn mark_fatal(shared: &Shared, e: &Error) {
    if let Error::NativeTransaction {
        fatal: true,
        code,
        detail,
        ..
    } = e
    {
        lock(&shared.acc).fatal = Some((*code, detail.clone()));
    }
}
