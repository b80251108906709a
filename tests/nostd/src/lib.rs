//! Links drover-core into a `#![no_std]` staticlib with its own panic handler
//! and no allocator. The exported function routes a call, so the router, the
//! admission, the breaker and the EWMA code are all linked in: if any of them
//! (or a dependency) needed std or alloc, this crate would not build.
#![no_std]

use drover_core::call::{Action, Event, Request};
use drover_core::node::{NodeKind, NodeSpec};
use drover_core::route::{Op, Query};
use drover_core::trace::TraceId;
use drover_core::{Duration, Instant, Router, RouterConfig};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Routes one streamed call over two nodes, failing over once; returns the
/// number of attempts it took (2), or 0 if anything was refused.
#[unsafe(no_mangle)]
pub extern "C" fn drover_nostd_route(seed: u64) -> u32 {
    let mut cfg = RouterConfig::default();
    cfg.pools.global = 8;
    cfg.pools.chat = 8;
    cfg.pools.stream = 8;
    cfg.pools.embed = 8;
    cfg.pools.background = 8;
    let Ok(mut router) = Router::<4, 8, 4>::new(cfg, seed) else { return 0 };
    for name in ["a", "b"] {
        let Ok(spec) = NodeSpec::new(name, NodeKind::Ollama) else { return 0 };
        if router.add_node(spec).is_err() {
            return 0;
        }
    }
    let mut now = Instant::from_secs(1);
    let mut call = router.start(Request::new(TraceId(seed), Query::new(Op::Stream)), now);
    let mut failed = false;
    loop {
        match router.poll(&mut call, now) {
            Action::Send { attempt, .. } => {
                now = now + Duration::from_millis(5);
                let e = if failed {
                    Event::Completed(attempt)
                } else {
                    failed = true;
                    Event::Failed(attempt, drover_core::reason::Failure::Connect)
                };
                let _ = router.handle(&mut call, e, now);
            }
            Action::Wait { until } => now = until.unwrap_or(now),
            Action::Finish(_) | Action::Done => return u32::from(call.attempts()),
            Action::Cancel { .. } => {}
        }
    }
}
