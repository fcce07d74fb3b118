//! A pool of worker threads that each run a job of `n` operations when told to: what the
//! multi-thread rows time (wall time until the last thread is done).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `k` threads waiting for batches.
pub struct Workers {
    jobs: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `k` threads named `{name}-{i}`. Each calls `setup` on itself first (to build
    /// what must live on that thread: a runtime, a default subscriber) and then runs the job
    /// `setup` returned for every batch.
    pub fn start<S, J>(k: usize, name: &str, setup: S) -> Self
    where
        S: Fn() -> J + Send + Clone + 'static,
        J: FnMut(u64),
    {
        let (done_tx, done) = mpsc::channel();
        let (mut jobs, mut threads) = (Vec::new(), Vec::new());
        for i in 0..k {
            let (job_tx, job_rx) = mpsc::channel::<u64>();
            let done_tx = done_tx.clone();
            let setup = setup.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        let mut job = setup();
                        while let Ok(n) = job_rx.recv() {
                            job(n);
                            if done_tx.send(()).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("spawn worker"),
            );
            jobs.push(job_tx);
        }
        Workers {
            jobs,
            done,
            threads,
        }
    }

    /// Splits `n` operations between the threads; returns the wall time until all are done.
    pub fn run_split(&self, n: u64) -> Duration {
        let k = self.jobs.len() as u64;
        self.run(|i| n / k + u64::from(i < n % k))
    }

    /// Gives every thread `n` operations; returns the wall time until all are done.
    pub fn run_each(&self, n: u64) -> Duration {
        self.run(|_| n)
    }

    fn run(&self, share: impl Fn(u64) -> u64) -> Duration {
        let start = Instant::now();
        for (i, job) in self.jobs.iter().enumerate() {
            job.send(share(i as u64)).expect("worker alive");
        }
        for _ in &self.jobs {
            self.done.recv().expect("worker done");
        }
        start.elapsed()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
