//! Prints the sizes of drover-core's main types, in bytes.
//!
//! `cargo run -p drover-benches --bin sizes`

use core::mem::size_of;

use drover_core::call::Call;
use drover_core::metrics::NodeMetrics;
use drover_core::node::Node;
use drover_core::router::Router;

fn main() {
    let rows: [(&str, usize); 5] = [
        ("Node", size_of::<Node>()),
        ("NodeMetrics", size_of::<NodeMetrics>()),
        ("Call", size_of::<Call>()),
        ("Router<16>", size_of::<Router<16>>()),
        ("Router<1024>", size_of::<Router<1024>>()),
    ];
    for (name, bytes) in rows {
        println!("{name:<14} {bytes:>9} bytes");
    }
}
