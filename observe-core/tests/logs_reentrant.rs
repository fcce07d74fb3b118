//! A writer that itself logs, under a global subscriber (the only setup in which tracing
//! delivers an event emitted during another event's dispatch to the same layer).
//!
//! The nested event finds the thread's line buffer busy and must get a fresh one: both lines
//! come out whole, nothing panics.

// In a module so that `cargo test -p observe-core logs` selects these tests by name.
mod logs {
    use std::cell::Cell;
    use std::io;
    use std::sync::Mutex;

    use observe_core::logs::JsonLayer;
    use tracing_subscriber::layer::SubscriberExt;

    static OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    thread_local! {
        static IN_WRITE: Cell<bool> = const { Cell::new(false) };
    }

    struct LoggingWriter;

    impl io::Write for LoggingWriter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if !IN_WRITE.with(|w| w.replace(true)) {
                tracing::warn!(bytes = b.len(), "writer logging while writing");
                IN_WRITE.with(|w| w.set(false));
            }
            OUT.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_logs_gets_a_fresh_buffer_instead_of_a_panic() {
        let layer = JsonLayer::builder().writer(|| LoggingWriter).build();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();

        tracing::info!(outer = true, "outer event");

        let text = String::from_utf8(OUT.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        // The nested line is written first: it completes inside the outer line's write.
        assert_eq!(lines[0]["message"], "writer logging while writing");
        assert_eq!(lines[1]["message"], "outer event");
        assert_eq!(lines[1]["outer"], true);
        assert_eq!(
            lines[0]["bytes"].as_u64().unwrap() as usize,
            text.lines().nth(1).unwrap().len() + 1
        );
    }
}
