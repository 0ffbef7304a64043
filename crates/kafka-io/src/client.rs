//! librdkafka client handles that are only needed for a moment.
//!
//! Destroying a librdkafka client joins its threads and, for a consumer,
//! closes it: 50–100 ms measured on loopback for the short-lived admin client
//! and position reader a transactional source creates while it starts. That
//! time bought nothing on the startup path, so such clients are destroyed on
//! a thread of their own.

/// Drops `client` on a background thread, so the caller does not wait for
/// librdkafka to shut it down. If no thread can be started, the closure —
/// and with it the client — is dropped right here instead.
pub(crate) fn dispose<T: Send + 'static>(what: &'static str, client: T) {
    let _ = std::thread::Builder::new()
        .name(format!("dispose {what}"))
        .spawn(move || drop(client));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    struct Slow(Arc<AtomicBool>);

    impl Drop for Slow {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(200));
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn disposing_does_not_wait_for_the_drop_and_the_drop_still_runs() {
        let dropped = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        dispose("test", Slow(dropped.clone()));
        assert!(
            !dropped.load(Ordering::SeqCst),
            "dispose returned only after the drop ({:?})",
            started.elapsed()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the value was never dropped");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
