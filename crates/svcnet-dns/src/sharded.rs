//! A hash map split into shards behind `Arc`s: cloning it (one per published snapshot) copies
//! 64 pointers, and a change copies only the shard it touches if a snapshot still shares it.
//! So publishing after one change costs 1/64 of the map instead of all of it, and snapshots
//! share every untouched shard (one copy of the zone in memory, not two).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

const SHARDS: usize = 64;

/// FNV-1a: fast for the short keys here (names of at most 126 octets, IPs). Keys come from
/// the API (not from DNS clients), so flooding a shard with collisions needs API write access.
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        // Mix the high bits down: the shard index uses the low ones, hashbrown the top 7.
        self.0 ^ (self.0 >> 29)
    }
}

pub type FnvBuild = BuildHasherDefault<Fnv>;
type Shard<K, V> = HashMap<K, V, FnvBuild>;

#[derive(Debug)]
pub struct Sharded<K, V> {
    shards: Vec<Arc<Shard<K, V>>>,
}

impl<K, V> Clone for Sharded<K, V> {
    fn clone(&self) -> Self {
        Sharded {
            shards: self.shards.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Arc::new(Shard::default())).collect(),
        }
    }
}

fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    // Not the same hash as inside the shard: take bits hashbrown does not use for its groups.
    (FnvBuild::default().hash_one(key) >> 20) as usize % SHARDS
}

impl<K: Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].get(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The shard holding `key`, copied first if a snapshot shares it.
    fn shard_mut<Q>(&mut self, key: &Q) -> &mut Shard<K, V>
    where
        Q: Hash + ?Sized,
    {
        Arc::make_mut(&mut self.shards[shard_of(key)])
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.shard_mut(&key).insert(key, value)
    }

    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Look before copying a shared shard for nothing.
        self.get(key)?;
        self.shard_mut(key).remove_entry(key)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_entry(key).map(|(_, value)| value)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key)?;
        self.shard_mut(key).get_mut(key)
    }

    pub fn entry(&mut self, key: K) -> std::collections::hash_map::Entry<'_, K, V> {
        let shard = shard_of(&key);
        Arc::make_mut(&mut self.shards[shard]).entry(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(|shard| shard.keys())
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        *self = Sharded::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_untouched_shards() {
        let mut map: Sharded<u32, u32> = Sharded::default();
        for i in 0..1000 {
            map.insert(i, i);
        }
        let snapshot = map.clone();
        map.insert(5, 50);
        assert_eq!(snapshot.get(&5), Some(&5));
        assert_eq!(map.get(&5), Some(&50));
        let shared = map
            .shards
            .iter()
            .zip(&snapshot.shards)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(map.remove(&5), Some(50));
        assert_eq!(map.len(), 999);
    }
}
