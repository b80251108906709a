//! The per-worker reactor: timers, cross-thread wakeups, edge-triggered
//! readiness after short reads, non-blocking connect, and the fallback to
//! async-io off the workers.

use std::io::{self, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::reactor::{self, Dir, Socket};
use super::super::{Runtime, Timer};
use super::{LIMIT, within};

#[test]
fn timers_on_a_worker_fire_in_deadline_order_and_leave_the_queue() {
    let rt = Runtime::new(1).expect("runtime");
    let fired = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let tasks: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .map(|ms| {
            let fired = Arc::clone(&fired);
            rt.spawn(async move {
                assert!(reactor::current().is_some(), "a worker has a reactor");
                let at = Timer::after(Duration::from_millis(ms)).await;
                fired.lock().unwrap().push((ms, at));
            })
        })
        .collect();
    for t in tasks {
        within(&rt, LIMIT, t);
    }
    let fired = fired.lock().unwrap().clone();
    let order: Vec<u64> = fired.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(order, [10, 20, 30]);
    for (ms, at) in fired {
        assert!(at >= start + Duration::from_millis(ms), "fired early");
        assert!(Instant::now() >= at);
    }
    // Timers dropped before they fire, and ones moved, leave no entry.
    let left = within(
        &rt,
        LIMIT,
        rt.spawn(async {
            let reactor = reactor::current().expect("worker reactor");
            for _ in 0..100 {
                let mut t = Timer::after(Duration::from_secs(60));
                assert!(futures_poll_once(&mut t).is_none());
            }
            let mut moved = Timer::after(Duration::from_secs(60));
            assert!(futures_poll_once(&mut moved).is_none());
            assert_eq!(reactor.timers(), 1);
            moved.set_at(Instant::now() + Duration::from_millis(5));
            assert_eq!(reactor.timers(), 0, "set_at removes the old entry");
            moved.await;
            reactor.timers()
        }),
    );
    assert_eq!(left, 0);
}

/// Polls `fut` once with a no-op waker.
fn futures_poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(fut).poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

#[test]
fn a_sleeping_worker_is_woken_from_another_thread() {
    let rt = Runtime::new(1).expect("runtime");
    let (tx, rx) = smol::channel::bounded::<u32>(1);
    let task = rt.spawn(async move { rx.recv().await });
    // Let the worker go to sleep in epoll_wait with nothing due.
    std::thread::sleep(Duration::from_millis(50));
    let sender = std::thread::spawn(move || smol::future::block_on(tx.send(7)));
    assert_eq!(within(&rt, LIMIT, task), Ok(7));
    sender.join().expect("sender thread").expect("sent");
    // A task spawned from outside wakes it too.
    let t = rt.spawn(async { 5 });
    assert_eq!(within(&rt, LIMIT, t), 5);
}

#[test]
fn data_after_a_short_read_still_wakes_the_reader() {
    let rt = Runtime::new(1).expect("runtime");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut writer = TcpStream::connect(addr).expect("connect");
    let (accepted, _) = listener.accept().expect("accept");
    const CHUNKS: usize = 5;
    const CHUNK: usize = 700;
    let reader = rt.spawn(async move {
        let mut socket = Socket::new(accepted);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < CHUNKS * CHUNK {
            let n = std::future::poll_fn(|cx| {
                socket.poll_with(
                    Dir::Read,
                    cx,
                    |mut s| s.read(&mut buf),
                    // Every read here is short: the reader trusts the
                    // reactor to report the next chunk.
                    |&n| n > 0 && n < 64 * 1024,
                )
            })
            .await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let registered = reactor::current().expect("worker reactor").sources();
        Ok::<_, io::Error>((got, registered))
    });
    for i in 0..CHUNKS {
        std::thread::sleep(Duration::from_millis(20));
        writer.write_all(&[i as u8; CHUNK]).expect("write chunk");
    }
    let (got, registered) = within(&rt, LIMIT, reader).expect("read");
    assert_eq!(got.len(), CHUNKS * CHUNK);
    for (i, chunk) in got.chunks(CHUNK).enumerate() {
        assert!(chunk.iter().all(|&b| b == i as u8), "chunk {i} intact");
    }
    assert_eq!(registered, 1, "the socket is on the worker's reactor");
    // Dropping the socket frees its slot.
    let after = within(
        &rt,
        LIMIT,
        rt.spawn(async { reactor::current().expect("worker reactor").sources() }),
    );
    assert_eq!(after, 0);
}

#[test]
fn connect_on_a_worker_reports_refusal_and_connects() {
    let rt = Runtime::new(1).expect("runtime");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let refused = within(
        &rt,
        LIMIT,
        rt.spawn(async move { reactor::connect(closed).await.map(|_| ()) }),
    );
    assert_eq!(
        refused.expect_err("nothing listens").kind(),
        io::ErrorKind::ConnectionRefused
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = within(
        &rt,
        LIMIT,
        rt.spawn(async move {
            let socket = reactor::connect(addr).await?;
            socket.get_ref()?.peer_addr()
        }),
    );
    assert_eq!(peer.expect("connected"), addr);
}

#[test]
fn off_the_workers_sockets_and_timers_use_async_io() {
    assert!(reactor::current().is_none());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    smol::block_on(async {
        let start = Instant::now();
        Timer::after(Duration::from_millis(10)).await;
        assert!(start.elapsed() >= Duration::from_millis(10));
        let mut socket = reactor::connect(addr).await.expect("connect");
        let (mut peer, _) = listener.accept().expect("accept");
        peer.write_all(b"hello").expect("write");
        let mut buf = [0u8; 16];
        let n = socket
            .io_with(Dir::Read, |mut s| s.read(&mut buf))
            .await
            .expect("read");
        assert_eq!(&buf[..n], b"hello");
    });
}
