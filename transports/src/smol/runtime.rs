//! [`Runtime`]: a multi-threaded smol executor the HTTP pieces run on.
//!
//! smol's global executor runs on one thread unless told otherwise, so the
//! transport owns its executor: `threads` OS threads each run
//! `smol::block_on(executor.run(stop))`. While a thread waits for work it
//! also drives async-io's reactor (sockets and timers), so no extra reactor
//! thread is needed.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Shutdown;

/// How long dropping a [`Runtime`] waits for its threads to finish the task
/// they are polling and exit. A thread still busy after that (a task that
/// blocks its thread) is left to finish on its own.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// An [`Arc`]`<`[`smol::Executor`]`>` run by a fixed number of OS threads.
///
/// Server connections, client connection drivers and anything passed to
/// [`spawn`](Runtime::spawn) run on these threads. Dropping the runtime stops
/// the threads (each finishes the poll it is in) and joins them, waiting at
/// most a few seconds; tasks that have not finished are dropped with the
/// executor once its last reference is gone.
pub struct Runtime {
    executor: Arc<smol::Executor<'static>>,
    stop: Shutdown,
    threads: Vec<JoinHandle<()>>,
    exited: mpsc::Receiver<()>,
}

impl Runtime {
    /// Starts `threads` executor threads (named `drover-rt-0`, ...). `0`
    /// means one per available core.
    ///
    /// # Errors
    ///
    /// The OS refused to create a thread.
    pub fn new(threads: usize) -> io::Result<Runtime> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            threads
        };
        let executor = Arc::new(smol::Executor::new());
        let stop = Shutdown::new();
        let (exited_tx, exited) = mpsc::channel();
        let mut runtime = Runtime {
            executor,
            stop,
            threads: Vec::with_capacity(threads),
            exited,
        };
        for i in 0..threads {
            let executor = Arc::clone(&runtime.executor);
            let stop = runtime.stop.fired();
            let exited_tx = exited_tx.clone();
            // On error, `runtime` is dropped here, which stops the threads
            // already started.
            let handle = std::thread::Builder::new()
                .name(format!("drover-rt-{i}"))
                .spawn(move || {
                    smol::block_on(executor.run(stop));
                    // The receiver is gone only if the runtime was dropped
                    // without waiting; nobody needs the message then.
                    let _ = exited_tx.send(());
                })?;
            runtime.threads.push(handle);
        }
        Ok(runtime)
    }

    /// The executor, to hand to code that spawns its own tasks.
    pub fn executor(&self) -> &Arc<smol::Executor<'static>> {
        &self.executor
    }

    /// Spawns `future` on the runtime's threads. Dropping the returned task
    /// cancels it; call [`smol::Task::detach`] to let it run on its own.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> smol::Task<T> {
        self.executor.spawn(future)
    }

    /// Runs `future` to completion on the calling thread (which does not run
    /// the runtime's other tasks meanwhile; they keep running on the
    /// runtime's threads). Typically `main` does
    /// `rt.block_on(server.run(&rt, handler, shutdown))`.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }

    /// How many executor threads the runtime started.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.trigger();
        let deadline = std::time::Instant::now() + STOP_WAIT;
        let mut exited = 0;
        while exited < self.threads.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.exited.recv_timeout(left) {
                Ok(()) => exited += 1,
                // Every thread has ended (some by panicking, without a
                // message): all joins return at once.
                Err(mpsc::RecvTimeoutError::Disconnected) => exited = self.threads.len(),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        if exited < self.threads.len() {
            tracing::warn!(
                stuck = self.threads.len() - exited,
                "runtime threads still busy after {STOP_WAIT:?}; not waiting for them"
            );
            return;
        }
        for handle in self.threads.drain(..) {
            // Every thread has sent its exit message, so each join returns
            // at once. A thread that panicked has already reported it.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn tasks_run_on_the_runtime_threads_and_drop_joins_them() {
        let rt = Runtime::new(2).expect("runtime");
        assert_eq!(rt.threads(), 2);
        let names: Vec<String> = (0..8)
            .map(|_| rt.spawn(async { std::thread::current().name().unwrap_or("").to_owned() }))
            .map(|task| rt.block_on(task))
            .collect();
        assert!(
            names.iter().all(|n| n.starts_with("drover-rt-")),
            "{names:?}"
        );
        // A task that never ends does not keep the threads alive.
        rt.spawn(std::future::pending::<()>()).detach();
        let started = Instant::now();
        drop(rt);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn zero_threads_means_one_per_core() {
        let rt = Runtime::new(0).expect("runtime");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(rt.threads(), cores);
    }
}
