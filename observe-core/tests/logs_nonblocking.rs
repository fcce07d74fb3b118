//! The non-blocking writer against a sink that blocks: exact drop counts, callers that never
//! wait for the sink, and the guard's flush and timeout.
//!
//! Its own test binary so that the process-wide drop counter is asserted exactly; the tests
//! here take a lock so they do not run concurrently either.

// In a module so that `cargo test -p observe-core logs` selects these tests by name.
mod logs {
    use std::io;
    use std::sync::mpsc;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use observe_core::counters::LOG_RECORDS_DROPPED;
    use observe_core::logs::{JsonLayer, NonBlocking};
    use tracing_subscriber::layer::SubscriberExt;

    static SERIAL: Mutex<()> = Mutex::new(());

    /// Generous bound for "did not hang"; never reached when things work.
    const HANG: Duration = Duration::from_secs(20);

    /// A sink that reports every write and then blocks until the gate opens.
    #[derive(Clone)]
    struct GatedSink {
        entered: mpsc::SyncSender<()>,
        gate: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl io::Write for GatedSink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let _ = self.entered.try_send(());
            let (open, cv) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.written.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn gated() -> (GatedSink, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::sync_channel(1024);
        (
            GatedSink {
                entered: tx,
                gate: Arc::new((Mutex::new(false), Condvar::new())),
                written: Arc::default(),
            },
            rx,
        )
    }

    fn open_gate(sink: &GatedSink) {
        let (open, cv) = &*sink.gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }

    /// Runs `f` on another thread and fails (instead of hanging) if it does not finish.
    fn must_not_block(f: impl FnOnce() + Send + 'static) {
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(HANG)
            .expect("the caller blocked on the sink");
    }

    #[test]
    fn full_queue_drops_and_counts_exactly_and_callers_never_block() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let (sink, entered) = gated();
        let (writer, guard) = NonBlocking::builder()
            .capacity(4)
            .finish(sink.clone())
            .unwrap();
        let before = LOG_RECORDS_DROPPED.get();

        let layer_writer = writer.clone();
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::registry().with(JsonLayer::builder().writer(layer_writer).build()),
        );
        let log = move |dispatch: &tracing::Dispatch, n: usize| {
            tracing::dispatcher::with_default(dispatch, || tracing::info!(n, "line"))
        };

        // Line 0 is taken by the worker, which then blocks inside the sink.
        log(&dispatch, 0);
        entered.recv_timeout(HANG).expect("worker never wrote");

        // 4 lines fill the queue, 3 more are dropped; none of these calls waits for the sink.
        let d = dispatch.clone();
        must_not_block(move || {
            for n in 1..=7 {
                log(&d, n);
            }
        });
        assert_eq!(writer.dropped(), 3);
        assert_eq!(LOG_RECORDS_DROPPED.get() - before, 3);

        // Unblocked, the worker writes exactly what was queued, in order.
        open_gate(&sink);
        assert!(writer.flush_timeout(HANG));
        let text = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        let ns: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ns, [0, 1, 2, 3, 4]);

        // With room again, lines flow.
        log(&dispatch, 8);
        assert!(guard.shutdown(HANG));
        assert!(sink.written.lock().unwrap().ends_with(b"}\n"));
        assert_eq!(writer.dropped(), 3);

        // After shutdown, lines are dropped and counted, not queued forever.
        log(&dispatch, 9);
        assert_eq!(writer.dropped(), 4);
        assert_eq!(LOG_RECORDS_DROPPED.get() - before, 4);
    }

    #[test]
    fn byte_bound_drops_too() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let (sink, entered) = gated();
        let (writer, guard) = NonBlocking::builder()
            .capacity(1000)
            .max_queued_bytes(100)
            .finish(sink.clone())
            .unwrap();
        let before = LOG_RECORDS_DROPPED.get();
        writer.write_line(b"first\n");
        entered.recv_timeout(HANG).unwrap();
        let line = [b'x'; 40];
        for _ in 0..3 {
            writer.write_line(&line); // 40 + 40 fit in 100 bytes, the third does not
        }
        // A line bigger than the whole bound is only accepted into an empty queue; this one is not.
        writer.write_line(&[b'y'; 500]);
        assert_eq!(writer.dropped(), 2);
        assert_eq!(LOG_RECORDS_DROPPED.get() - before, 2);
        open_gate(&sink);
        assert!(guard.shutdown(HANG));
        assert_eq!(sink.written.lock().unwrap().len(), 6 + 80);
    }

    #[test]
    fn guard_drop_flushes_everything_queued() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let written = Arc::new(Mutex::new(Vec::new()));
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                std::thread::yield_now(); // a slow-ish sink
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        // A timeout far beyond need: this test is about completeness, and a loaded CI machine
        // must not turn it into a timing test.
        let (writer, guard) = NonBlocking::builder()
            .shutdown_timeout(std::time::Duration::from_secs(60))
            .finish(Shared(written.clone()))
            .unwrap();
        for i in 0..1000u32 {
            writer.write_line(format!("{i}\n").as_bytes());
        }
        drop(guard);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert_eq!(text.lines().last(), Some("999"));
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn guard_drop_with_a_stuck_sink_returns_and_counts_the_lost_lines() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let (sink, entered) = gated();
        let (writer, guard) = NonBlocking::builder()
            .shutdown_timeout(Duration::from_millis(50))
            .finish(sink.clone())
            .unwrap();
        let before = LOG_RECORDS_DROPPED.get();
        writer.write_line(b"stuck\n");
        entered.recv_timeout(HANG).unwrap();
        writer.write_line(b"queued 1\n");
        writer.write_line(b"queued 2\n");
        must_not_block(move || drop(guard));
        // The two queued lines will never be written: counted. The one inside the sink is not.
        assert_eq!(writer.dropped(), 2);
        assert_eq!(LOG_RECORDS_DROPPED.get() - before, 2);
        open_gate(&sink);
    }
}
