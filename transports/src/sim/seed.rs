//! Seeds: one `u64` per simulation, split into independent streams.
//!
//! Each consumer of randomness (the router, each simulated node, the workload
//! generator) gets its own generator, seeded by [`derive()`]`(seed, stream)`.
//! Streams do not interfere: adding a node or drawing one more number in one
//! place leaves every other stream unchanged.

/// Stream of the router's generator.
pub const ROUTER: u64 = 0;
/// Stream of the workload generator.
pub const WORKLOAD: u64 = 1;
/// Stream of the bursty workload generator.
pub const BURSTY: u64 = 2;
/// Stream of the multi-turn session generator.
pub const SESSIONS: u64 = 3;
/// Stream of a replayed trace's operation mix.
pub const TRACE: u64 = 4;
/// Stream of the gateway assignment hash ([`Assign::Hash`](super::Assign::Hash)).
pub const ASSIGN: u64 = 5;
/// Stream of the simulated probe latencies ([`probe`](super::Driver) replies).
pub const PROBES: u64 = 6;
/// Streams of the routers of gateways after the first: gateway `g >= 1`
/// uses `GATEWAYS + g` (gateway 0 uses [`ROUTER`], so a one-gateway run
/// draws exactly as before gateways existed).
pub const GATEWAYS: u64 = 100;
/// Stream of the first simulated node; node `i` uses `NODES + i`.
pub const NODES: u64 = 1_000;
/// Streams of drawn faults ([`draw_faults`](super::draw_faults)): node `n`,
/// rate `r` uses `FAULTS + 64 × n + r`.
pub const FAULTS: u64 = 1 << 32;
/// Streams of reply corruption draws: node `i` uses `REPLIES + i`.
pub const REPLIES: u64 = 1 << 40;

/// The seed of `stream` within the simulation seeded by `seed`: two rounds
/// of SplitMix64's finaliser (Steele, Lea and Flood, "Fast Splittable
/// Pseudorandom Number Generators", 2014) over the pair.
pub fn derive(seed: u64, stream: u64) -> u64 {
    mix(mix(seed ^ 0x6a09_e667_f3bc_c909).wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_seeds_differ_and_are_stable() {
        let a = derive(42, ROUTER);
        assert_eq!(a, derive(42, ROUTER));
        let all = [
            a,
            derive(42, WORKLOAD),
            derive(42, BURSTY),
            derive(42, SESSIONS),
            derive(42, TRACE),
            derive(42, NODES),
            derive(42, NODES + 1),
            derive(42, ASSIGN),
            derive(42, GATEWAYS + 1),
            derive(42, FAULTS),
            derive(42, REPLIES),
            derive(43, ROUTER),
            derive(0, ROUTER),
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
