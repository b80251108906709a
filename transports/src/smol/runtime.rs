//! [`Runtime`]: the threads the HTTP pieces run on, one executor each.
//!
//! Each of the `threads` OS threads runs its own smol executor
//! (`smol::block_on(executor.run(stop))`), a worker in the nginx sense. A
//! task spawned from a worker stays on that worker, and the [`Client`]
//! keeps a pool per worker, so a request, its upstream connection and the
//! tasks that wake each other all run on one thread: no cross-thread
//! wakeups (futex calls and context switches), which measured side by side
//! cost more than a shared executor's balancing gave. New server
//! connections are dealt to the workers in turn. Each worker has a reactor
//! of its own (an `epoll`, on Linux), and waits in it when its executor has
//! nothing to run: a socket or timer is waited for by the worker whose task
//! uses it, and no other thread is involved (see the `reactor` module's
//! docs for why not async-io's global reactor). [`Runtime::block_on`]
//! only parks.
//!
//! [`Client`]: super::Client

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Shutdown;
use super::reactor;

/// How long dropping a [`Runtime`] waits for its threads to finish the task
/// they are polling and exit. A thread still busy after that (a task that
/// blocks its thread) is left to finish on its own.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Gives each runtime a distinct id, so a thread knows whose worker it is.
static RUNTIMES: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// (runtime id, worker index) of the runtime thread this is, if any.
    static WORKER: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// A fixed number of OS threads, each running its own
/// [`smol::Executor`].
///
/// Server connections (with the upstream connections their requests drive)
/// and anything passed to [`spawn`](Runtime::spawn) run on these threads. Dropping the runtime stops
/// the threads (each finishes the poll it is in) and joins them, waiting at
/// most a few seconds; tasks that have not finished are dropped with the
/// executors once their last reference is gone.
pub struct Runtime {
    id: usize,
    executors: Vec<Arc<smol::Executor<'static>>>,
    next: AtomicUsize,
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
        let stop = Shutdown::new();
        let (exited_tx, exited) = mpsc::channel();
        let mut runtime = Runtime {
            id: RUNTIMES.fetch_add(1, Ordering::Relaxed),
            executors: (0..threads)
                .map(|_| Arc::new(smol::Executor::new()))
                .collect(),
            next: AtomicUsize::new(0),
            stop,
            threads: Vec::with_capacity(threads),
            exited,
        };
        for i in 0..threads {
            let executor = Arc::clone(&runtime.executors[i]);
            let id = runtime.id;
            let stop = runtime.stop.fired();
            let exited_tx = exited_tx.clone();
            // On error, `runtime` is dropped here, which stops the threads
            // already started.
            let handle = std::thread::Builder::new()
                .name(format!("drover-rt-{i}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(Some((id, i))));
                    let run = executor.run(stop);
                    match reactor::Reactor::new() {
                        Ok(reactor) => reactor::block_on(reactor, run),
                        Err(e) => {
                            tracing::debug!(error = %e, "worker uses async-io's reactor");
                            smol::block_on(run)
                        }
                    }
                    // The receiver is gone only if the runtime was dropped
                    // without waiting; nobody needs the message then.
                    let _ = exited_tx.send(());
                })?;
            runtime.threads.push(handle);
        }
        Ok(runtime)
    }

    /// The executor of the worker this thread is, or else of the next
    /// worker in turn: where a task spawned from here should run.
    pub fn executor(&self) -> &Arc<smol::Executor<'static>> {
        &self.executors[self.current_or_next()]
    }

    /// Every worker's executor, by worker index.
    pub fn executors(&self) -> &[Arc<smol::Executor<'static>>] {
        &self.executors
    }

    /// This runtime's id (distinct per runtime in the process).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The index of the worker of runtime `id` that the calling thread is,
    /// if it is one.
    pub fn worker_of(id: usize) -> Option<usize> {
        WORKER
            .with(Cell::get)
            .and_then(|(rt, i)| (rt == id).then_some(i))
    }

    fn current_or_next(&self) -> usize {
        Runtime::worker_of(self.id)
            .unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed) % self.executors.len())
    }

    /// Spawns `future` on the calling worker, or (from any other thread) on
    /// the next worker in turn. Dropping the returned task cancels it; call
    /// [`smol::Task::detach`] to let it run on its own.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> smol::Task<T> {
        self.executor().spawn(future)
    }

    /// Runs `future` to completion on the calling thread (which does not run
    /// the runtime's other tasks meanwhile; they keep running on the
    /// runtime's threads). Typically `main` does
    /// `rt.block_on(server.run(&rt, handler, shutdown))`.
    ///
    /// The calling thread only parks between polls. Sockets and timers
    /// first used by `future` itself (not by tasks it spawns) are waited for
    /// by async-io's reactor, which its own thread drives: this thread has
    /// no reactor, so that nothing it registers can outlive it unwatched.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        smol::future::block_on(future)
    }

    /// A handle that spawns onto this runtime's workers, for code that
    /// outlives a borrow of the runtime (it does not keep the runtime
    /// alive). Spawn tasks here rather than with `smol::spawn`: smol's
    /// global executor runs on a thread of its own, whose sockets and
    /// timers go to async-io's reactor, on yet another thread.
    pub fn spawner(&self) -> Spawner {
        Spawner {
            id: self.id,
            executors: self.executors.iter().map(Arc::downgrade).collect(),
        }
    }

    /// How many executor threads the runtime started.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

/// Spawns onto a [`Runtime`]'s workers; see [`Runtime::spawner`].
#[derive(Clone)]
pub struct Spawner {
    id: usize,
    executors: Vec<std::sync::Weak<smol::Executor<'static>>>,
}

impl Spawner {
    /// Spawns `future` on the calling worker, or on worker 0 from any other
    /// thread. `None` once the runtime has been dropped (the future is
    /// dropped unpolled).
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<smol::Task<T>> {
        let worker = Runtime::worker_of(self.id).unwrap_or(0);
        let executor = self.executors.get(worker)?.upgrade()?;
        Some(executor.spawn(future))
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("workers", &self.executors.len())
            .finish()
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
    fn a_task_knows_its_worker_and_spawns_beside_itself() {
        let rt = Runtime::new(2).expect("runtime");
        let id = rt.id();
        let executors = rt.executors().to_vec();
        for _ in 0..8 {
            let executors = executors.clone();
            let (outer, worker, inner) = rt.block_on(rt.spawn(async move {
                let outer = std::thread::current().name().unwrap_or("").to_owned();
                let worker = Runtime::worker_of(id).expect("a runtime thread is a worker");
                // What `Runtime::spawn` does from a worker.
                let inner = executors[worker]
                    .spawn(async { std::thread::current().name().unwrap_or("").to_owned() })
                    .await;
                (outer, worker, inner)
            }));
            assert_eq!(outer, format!("drover-rt-{worker}"));
            assert_eq!(outer, inner);
        }
        // From a thread that is not a worker, spawns go to the workers in
        // turn.
        let names: std::collections::BTreeSet<String> = (0..8)
            .map(|_| {
                rt.block_on(
                    rt.spawn(async { std::thread::current().name().unwrap_or("").to_owned() }),
                )
            })
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(Runtime::worker_of(id), None);
        assert_eq!(Runtime::worker_of(id + 1_000_000), None);
    }

    #[test]
    fn a_spawner_spawns_on_the_workers_until_the_runtime_is_gone() {
        let rt = Runtime::new(2).expect("runtime");
        let spawner = rt.spawner();
        let task = spawner
            .spawn(async { std::thread::current().name().unwrap_or("").to_owned() })
            .expect("runtime alive");
        assert_eq!(rt.block_on(task), "drover-rt-0", "from outside: worker 0");
        drop(rt);
        assert!(spawner.spawn(async {}).is_none(), "runtime dropped");
    }

    #[test]
    fn zero_threads_means_one_per_core() {
        let rt = Runtime::new(0).expect("runtime");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(rt.threads(), cores);
    }
}
