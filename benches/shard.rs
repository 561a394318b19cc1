//! `cargo bench --bench shard`: the operator sharding plan of docs/scaling.md, simulated. No
//! cluster: it spreads `BENCH_DURABLEJOBS` (default 100,000) DurableJobs over
//! `BENCH_NAMESPACES` (default 2,000) namespaces whose sizes follow a Zipf law (exponent 1.1: a
//! few namespaces hold most of them, as in a shared cluster), then assigns them to R operator
//! replicas two ways:
//! - by namespace, rendezvous-hashed (each replica holds a Lease per shard and watches only its
//!   namespaces, so the watch fan-out and the cache split R ways);
//! - by DurableJob (uid), rendezvous-hashed (an even load, but every replica watches every
//!   namespace and filters, so each holds the whole cache).
//!
//! For R = 1..=8 it prints the largest replica's share against an even share (max / mean) and,
//! when a replica is added (R → R + 1), the DurableJobs that change owner (rendezvous hashing
//! moves about 1 / (R + 1) of them and nothing else).

#[allow(dead_code)]
mod common;

use common::env_or;

/// FNV-1a, 64 bits: a stable hash (the same on every replica and every release).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// MurmurHash3's 64-bit finaliser: every input bit moves every output bit (FNV alone mixes the
/// last bytes of a key poorly).
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The replica (0..replicas) that owns `key`: the one whose weight for the key is the highest.
fn owner(key: &str, replicas: usize) -> usize {
    let k = fnv1a(key.as_bytes());
    (0..replicas)
        .max_by_key(|r| mix(k ^ mix(*r as u64 + 1)))
        .unwrap_or(0)
}

/// Namespace sizes summing to `total`, Zipf-distributed over `namespaces`.
fn zipf_sizes(total: usize, namespaces: usize, exponent: f64) -> Vec<usize> {
    let weights: Vec<f64> = (1..=namespaces)
        .map(|k| 1.0 / (k as f64).powf(exponent))
        .collect();
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights
        .iter()
        .map(|w| ((w / sum) * total as f64).floor() as usize)
        .collect();
    let short = total - sizes.iter().sum::<usize>();
    for s in sizes.iter_mut().take(short) {
        *s += 1;
    }
    sizes
}

/// DurableJobs per replica for an assignment.
fn loads(owners: &[usize], weights: &[usize], replicas: usize) -> Vec<usize> {
    let mut out = vec![0; replicas];
    for (o, w) in owners.iter().zip(weights) {
        out[*o] += w;
    }
    out
}

fn max_over_mean(loads: &[usize]) -> f64 {
    let mean = loads.iter().sum::<usize>() as f64 / loads.len() as f64;
    *loads.iter().max().unwrap_or(&0) as f64 / mean
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total = env_or("BENCH_DURABLEJOBS", 100_000);
    let namespaces = env_or("BENCH_NAMESPACES", 2_000);
    let sizes = zipf_sizes(total, namespaces, 1.1);
    assert_eq!(sizes.iter().sum::<usize>(), total, "the namespace sizes add up");
    let names: Vec<String> = (0..namespaces).map(|i| format!("team-{i:05}")).collect();
    let uids: Vec<String> = (0..total).map(|i| format!("dj-uid-{i:08}")).collect();
    let ones = vec![1usize; total];
    println!(
        "shard: {total} DurableJobs in {namespaces} namespaces (Zipf 1.1: the largest holds {}, the median {})\n",
        sizes[0],
        sizes[namespaces / 2]
    );
    println!(
        "| replicas | by namespace: max / mean | largest replica | moved when one is added | by DurableJob: max / mean | moved when one is added |"
    );
    println!("|---|---|---|---|---|---|");
    for r in 1..=8usize {
        let by_ns: Vec<usize> = names.iter().map(|n| owner(n, r)).collect();
        let by_ns_next: Vec<usize> = names.iter().map(|n| owner(n, r + 1)).collect();
        let by_uid: Vec<usize> = uids.iter().map(|u| owner(u, r)).collect();
        let by_uid_next: Vec<usize> = uids.iter().map(|u| owner(u, r + 1)).collect();
        let ns_loads = loads(&by_ns, &sizes, r);
        let moved_ns: usize = by_ns
            .iter()
            .zip(&by_ns_next)
            .zip(&sizes)
            .filter(|((a, b), _)| a != b)
            .map(|(_, s)| s)
            .sum();
        let uid_loads = loads(&by_uid, &ones, r);
        let moved_uid = by_uid.iter().zip(&by_uid_next).filter(|(a, b)| a != b).count();
        // what rendezvous hashing promises: a key that moves, moves to the new replica
        assert!(
            by_ns
                .iter()
                .zip(&by_ns_next)
                .chain(by_uid.iter().zip(&by_uid_next))
                .all(|(a, b)| a == b || *b == r),
            "a key moved between old replicas"
        );
        println!(
            "| {r} | {:.2} | {} | {:.1} % | {:.2} | {:.1} % |",
            max_over_mean(&ns_loads),
            ns_loads.iter().max().unwrap_or(&0),
            100.0 * moved_ns as f64 / total as f64,
            max_over_mean(&uid_loads),
            100.0 * moved_uid as f64 / total as f64,
        );
    }
}
