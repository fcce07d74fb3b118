//! Recorder numbers: which per-thread shard of a counter the calling thread writes.
//!
//! A counter that every request updates with `fetch_add` costs a locked instruction per
//! update, and a locked instruction waits for the store buffer to drain — on the request path,
//! right after the request and its future were copied, that is the slowest part of recording
//! (and, across cores, the counter's cache line moves to every writer in turn). Instead, each
//! thread that records takes a number, the lowest free one below [`MAX_RECORDERS`], and writes
//! only the shards tagged with its number, with a plain load and store: each shard has one
//! writer, and readers add the shards up. The values are still atomics, so a reader never sees
//! a torn one.
//!
//! A thread gives its number back when it exits, after forgetting every shard it cached; the
//! next thread to take the number goes on adding to the same shards, so nothing recorded is
//! lost, and the shards of a counter are bounded by [`MAX_RECORDERS`] whatever the thread
//! churn. A thread without a number (all taken, or exiting) records with `fetch_add` on the
//! counter's shared part, as before.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, PoisonError};

/// Threads that record through their own shards at once; others use the shared atomics.
pub(crate) const MAX_RECORDERS: u32 = 64;

/// Numbers never taken start at `next`; numbers given back wait in `returned`.
struct Numbers {
    next: u32,
    returned: Vec<u32>,
}

static NUMBERS: Mutex<Numbers> = Mutex::new(Numbers {
    next: 0,
    returned: Vec::new(),
});

/// A thread's number, held for the thread's life and given back by its destructor.
struct Recorder(Option<u32>);

impl Numbers {
    /// The lowest returned number (its shards exist already), else a new one, else none.
    fn take(&mut self) -> Option<u32> {
        if let Some((at, _)) = self.returned.iter().enumerate().min_by_key(|(_, n)| **n) {
            return Some(self.returned.swap_remove(at));
        }
        if self.next < MAX_RECORDERS {
            self.next += 1;
            return Some(self.next - 1);
        }
        None
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // First forget every shard this thread may still write through a cache: from here on
        // it records through the shared atomics, and the number may go to another thread.
        super::family::forget_shards();
        super::http::forget_shards();
        if let Some(n) = self.0 {
            // The mutex orders this thread's last writes before the next owner's first.
            lock().returned.push(n);
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Numbers> {
    NUMBERS.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    static RECORDER: Recorder = Recorder(lock().take());
}

/// The calling thread's recorder number, taken on first use: `None` when all
/// [`MAX_RECORDERS`] are held by live threads, or once the thread has begun to exit.
///
/// Only cache misses ask: the hot paths hold a pointer to their shard.
pub(crate) fn current() -> Option<u32> {
    RECORDER.try_with(|r| r.0).ok().flatten()
}

/// The shards of one counter (or group of counters), one per recorder number that wrote it:
/// a list that only grows, at its head, and is freed with it.
pub(crate) struct Shards<T> {
    head: AtomicPtr<Node<T>>,
    // Shared across threads as the `T`s are: `Send`/`Sync` only when `T` is.
    _shards: PhantomData<T>,
}

struct Node<T> {
    recorder: u32,
    next: *const Node<T>,
    shard: T,
}

impl<T> Default for Shards<T> {
    fn default() -> Self {
        Shards {
            head: AtomicPtr::new(std::ptr::null_mut()),
            _shards: PhantomData,
        }
    }
}

impl<T: Default> Shards<T> {
    /// The shard of recorder number `recorder`, made on its first use. Only the thread that
    /// holds the number asks for it, so no two threads add a shard for the same number.
    pub(crate) fn of(&self, recorder: u32) -> &T {
        if let Some(shard) = self.iter_nodes().find(|node| node.recorder == recorder) {
            return &shard.shard;
        }
        let node = Box::into_raw(Box::new(Node {
            recorder,
            next: std::ptr::null(),
            shard: T::default(),
        }));
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            // SAFETY: not linked yet: this thread alone holds the new node.
            unsafe { (*node).next = head };
            match self
                .head
                .compare_exchange(head, node, Ordering::Release, Ordering::Acquire)
            {
                // SAFETY: linked, so freed only with `self`, which `&self` keeps alive.
                Ok(_) => return unsafe { &(*node).shard },
                Err(now) => head = now,
            }
        }
    }
}

impl<T> Shards<T> {
    /// Every shard, newest first (for adding them up).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.iter_nodes().map(|node| &node.shard)
    }

    fn iter_nodes(&self) -> impl Iterator<Item = &Node<T>> {
        let mut at = self.head.load(Ordering::Acquire).cast_const();
        std::iter::from_fn(move || {
            // SAFETY: nodes are freed only when `self` is dropped, which `&self` excludes;
            // Acquire (on the head, and the links written before it) pairs with the Release
            // that linked each node.
            let node = unsafe { at.as_ref() }?;
            at = node.next;
            Some(node)
        })
    }
}

impl<T> Drop for Shards<T> {
    fn drop(&mut self) {
        let mut at = self.head.get_mut().cast_const();
        while !at.is_null() {
            // SAFETY: made by `Box::into_raw` in `of`, linked once, freed once, here.
            let node = unsafe { Box::from_raw(at.cast_mut()) };
            at = node.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_lowest_free_and_bounded() {
        let mut numbers = Numbers {
            next: 0,
            returned: Vec::new(),
        };
        let taken: Vec<_> = (0..MAX_RECORDERS).map(|_| numbers.take()).collect();
        assert_eq!(taken, (0..MAX_RECORDERS).map(Some).collect::<Vec<_>>());
        assert_eq!(numbers.take(), None, "no more than MAX_RECORDERS at once");
        numbers.returned.extend([9, 3, 40]);
        assert_eq!(numbers.take(), Some(3));
        assert_eq!(numbers.take(), Some(9));
        assert_eq!(numbers.take(), Some(40));
        assert_eq!(numbers.take(), None);
    }

    #[test]
    fn live_threads_never_share_a_number() {
        let barrier = std::sync::Barrier::new(5);
        let mut seen: Vec<u32> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..5)
                .map(|_| {
                    scope.spawn(|| {
                        let n = current();
                        // All five are alive together when each has its number.
                        barrier.wait();
                        n.expect("a number for each of five threads")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 5, "{seen:?}");
    }

    #[test]
    fn a_number_has_one_shard_and_every_shard_is_listed() {
        let shards: Shards<std::sync::atomic::AtomicU64> = Shards::default();
        for n in [3, 0, 3, 7, 0] {
            shards.of(n).fetch_add(u64::from(n) + 1, Ordering::Relaxed);
        }
        assert!(std::ptr::eq(shards.of(3), shards.of(3)));
        let mut values: Vec<u64> = shards.iter().map(|s| s.load(Ordering::Relaxed)).collect();
        values.sort_unstable();
        assert_eq!(values, [2, 8, 8], "one shard each for 0, 3 and 7");
    }

    /// Numbers come back when threads exit: far more threads than MAX_RECORDERS, one after
    /// another, each get one (without reuse, the 65th would not).
    #[test]
    fn numbers_are_given_back_when_threads_exit() {
        for i in 0..3 * MAX_RECORDERS {
            let n = std::thread::spawn(current).join().unwrap();
            assert!(n.is_some(), "thread {i} got no number");
        }
    }
}
