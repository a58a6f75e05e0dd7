//! Long Rust work that Ctrl-C can stop.
//!
//! Every long call of the bindings is the same shape: a list of items (query rows, photos)
//! worked through in chunks. [`in_interruptible_chunks`] runs them so.
//!
//! Python delivers `KeyboardInterrupt` on the main thread, and only when Python code runs
//! there. A call that spends minutes in Rust would otherwise ignore Ctrl-C until it returns.
//! [`interruptible`] runs the work on a worker thread with the GIL released while the
//! calling thread waits in short slices, checking for signals between them; on an interrupt
//! it raises the stop flag the work polls between chunks, waits for the chunk in flight to
//! end (so no thread outlives the call or its borrowed inputs) and raises the
//! `KeyboardInterrupt`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How often the waiting thread looks for a pending signal.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// `work` over `items`, `chunk` items per call, concatenated: on a worker thread with the GIL
/// released, stopping at the first error or, on Ctrl-C, after the chunk in flight (its
/// results are then dropped and the `KeyboardInterrupt` raised).
pub fn in_interruptible_chunks<T, U, E>(
    py: Python<'_>,
    items: &[T],
    chunk: usize,
    work: impl Fn(&[T]) -> Result<Vec<U>, E> + Sync,
) -> PyResult<Result<Vec<U>, E>>
where
    T: Sync,
    U: Send,
    E: Send,
{
    interruptible(py, |stop: &AtomicBool| {
        let mut done = Vec::with_capacity(items.len());
        for part in items.chunks(chunk.max(1)) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            done.extend(work(part)?);
        }
        Ok(done)
    })
}

/// `work(stop)` on a worker thread, the GIL released; `stop` turns true when the user
/// interrupts, and `work` should then return at its next chunk boundary (its result is
/// discarded and the `KeyboardInterrupt` raised).
fn interruptible<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&AtomicBool) -> T + Send,
{
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (done, mut finished) = mpsc::channel::<()>();
        let stop = &stop;
        let worker = scope.spawn(move || {
            // Dropped when the work ends (or panics): the waiting side then wakes.
            let _done = done;
            work(stop)
        });
        let mut interrupt = None;
        loop {
            let (receiver, outcome) = py.detach(move || {
                let outcome = finished.recv_timeout(SIGNAL_CHECK_INTERVAL);
                (finished, outcome)
            });
            finished = receiver;
            if !matches!(outcome, Err(mpsc::RecvTimeoutError::Timeout)) {
                break;
            }
            if let Err(raised) = py.check_signals() {
                stop.store(true, Ordering::Relaxed);
                interrupt = Some(raised);
                break;
            }
        }
        // The worker may call back into Python (a Python stage): wait without the GIL.
        let joined = py.detach(|| worker.join());
        if let Some(raised) = interrupt {
            return Err(raised);
        }
        joined.map_err(|panic| {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            PyRuntimeError::new_err(format!(
                "g3-rs panicked (a bug; please report it): {reason}"
            ))
        })
    })
}
