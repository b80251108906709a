//! Size budgets of drover-core's types.

use core::mem::size_of;

use drover_core::node::Node;
use drover_core::router::Router;

#[test]
fn a_node_fits_in_512_bytes() {
    let size = size_of::<Node>();
    assert!(size <= 512, "Node is {size} bytes, budget 512");
}

#[test]
fn a_router_grows_linearly_with_its_node_capacity() {
    // Each extra node slot costs a Node, its metrics and small per-node
    // buffers; nothing else depends on N.
    let per_node = (size_of::<Router<1024>>() - size_of::<Router<16>>()) / (1024 - 16);
    let bound = size_of::<Option<Node>>() + size_of::<drover_core::metrics::NodeMetrics>() + 64;
    assert!(
        per_node <= bound,
        "{per_node} bytes per node slot, bound {bound}"
    );
}
