//! Maglev lookup tables (Eisenbud et al., NSDI 2016) and smooth weighted round-robin order:
//! both turn a weighted endpoint list into slots of the shared `endpoints` map.

/// Largest table: slots of one pool live in 15 bits of the map key.
pub const MAX_TABLE: usize = 32_749;

/// Table sizes in use: primes, so every skip visits every slot. A pool keeps its size while it
/// grows within a band, so adding or removing one endpoint moves few clients.
const TABLE_SIZES: [usize; 5] = [251, 1021, 4093, 16_381, MAX_TABLE];

/// The table size for `slots` weighted endpoints: at least ten entries per endpoint.
pub fn table_size(slots: usize) -> usize {
    TABLE_SIZES
        .iter()
        .copied()
        .find(|size| *size >= slots.saturating_mul(10))
        .unwrap_or(MAX_TABLE)
}

/// FNV-1a 64 with a seed byte, stable across Rust versions and machines (every node must build
/// the same table).
fn hash(seed: u8, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in std::iter::once(seed).chain(name.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The Maglev table: for each of `size` slots, the index of the endpoint it maps to. Endpoints
/// are named (stable across nodes) and weighted; weight-0 endpoints get no slot.
pub fn table(names: &[String], weights: &[u32], size: usize) -> Vec<usize> {
    let n = names.len();
    if n == 0 || size == 0 {
        return Vec::new();
    }
    let offsets: Vec<usize> = names.iter().map(|s| (hash(1, s) % size as u64) as usize).collect();
    let skips: Vec<usize> = names
        .iter()
        .map(|s| (hash(2, s) % (size as u64 - 1).max(1)) as usize + 1)
        .collect();
    let mut next = vec![0usize; n];
    let mut entry: Vec<Option<usize>> = vec![None; size];
    let mut filled = 0;
    let max_weight = weights.iter().copied().max().unwrap_or(1).max(1);
    'fill: for round in 0.. {
        let mut progressed = false;
        for i in 0..n {
            // Weighted Maglev: endpoint i takes a turn in `weight` of every `max_weight` rounds.
            if u64::from(weights.get(i).copied().unwrap_or(1)) * (round + 1) / u64::from(max_weight)
                == u64::from(weights.get(i).copied().unwrap_or(1)) * round / u64::from(max_weight)
            {
                continue;
            }
            progressed = true;
            loop {
                let candidate = (offsets[i] + next[i] * skips[i]) % size;
                next[i] += 1;
                if entry[candidate].is_none() {
                    entry[candidate] = Some(i);
                    filled += 1;
                    break;
                }
                if next[i] > size * 2 {
                    break;
                }
            }
            if filled == size {
                break 'fill;
            }
        }
        if !progressed && round > u64::from(max_weight) {
            break;
        }
    }
    entry.into_iter().map(|e| e.unwrap_or(0)).collect()
}

/// Smooth weighted round robin (nginx's): the order in which `numgen inc` walks the slots, so
/// that a weight-3 endpoint is spread out rather than hit three times in a row.
pub fn weighted_order(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let Some((best, _)) = current.iter().enumerate().max_by_key(|(i, c)| (**c, -(*i as i64))) else {
            break;
        };
        current[best] -= total;
        order.push(best);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_keep_list_order() {
        assert_eq!(weighted_order(&[1, 1, 1, 1]), vec![0, 1, 2, 3]);
        assert_eq!(weighted_order(&[2, 1]), vec![0, 1, 0]);
    }

    #[test]
    fn maglev_spreads_evenly_and_moves_little() {
        let names: Vec<String> = (0..4).map(|i| format!("10.0.0.{i}:80")).collect();
        let size = table_size(4);
        let full = table(&names, &[1, 1, 1, 1], size);
        for i in 0..4 {
            let share = full.iter().filter(|e| **e == i).count();
            assert!(share.abs_diff(size / 4) <= 2, "endpoint {i} has {share} of {size}");
        }
        let fewer = table(&names[..3], &[1, 1, 1], size);
        let moved = full.iter().zip(&fewer).filter(|(a, b)| **a != 3 && a != b).count();
        assert!(
            moved < size / 10,
            "{moved} of {size} slots moved between surviving endpoints"
        );
    }
}
