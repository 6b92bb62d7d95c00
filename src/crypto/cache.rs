//! A bounded, thread-safe cache of derived row keys (or of AEAD instances keyed with them).
//!
//! Deriving a row key costs two HKDF runs; a page that lists fifty rows would otherwise pay them
//! on every field. Eviction is CLOCK (second chance): O(1) per operation, close to LRU in hit
//! rate, and needs no linked list. Evicted and cleared keys are wiped by their own drop
//! (`RowKey` is `ZeroizeOnDrop`; the AEAD instances wipe their round keys, see aead.rs).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// How many row keys a [`super::FieldCrypto`] keeps unless told otherwise.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 4096;

struct Slot<V> {
    id: Box<[u8]>,
    key: V,
    /// Set on every hit; the clock hand clears it once before evicting the slot.
    referenced: bool,
}

struct Clock<V> {
    index: HashMap<Box<[u8]>, usize>,
    slots: Vec<Slot<V>>,
    hand: usize,
}

pub(crate) struct KeyCache<V> {
    capacity: usize,
    clock: Mutex<Clock<V>>,
}

impl<V: Clone> KeyCache<V> {
    /// A cache of at most `capacity` keys; 0 turns caching off.
    pub(crate) fn new(capacity: usize) -> Self {
        KeyCache {
            capacity,
            clock: Mutex::new(Clock {
                index: HashMap::new(),
                slots: Vec::new(),
                hand: 0,
            }),
        }
    }

    /// A panic in another thread while holding the lock cannot leave the map half-updated in a
    /// way that matters (the worst is a stale slot), so a poisoned lock is simply reused.
    fn lock(&self) -> MutexGuard<'_, Clock<V>> {
        self.clock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, id: &[u8]) -> Option<V> {
        if self.capacity == 0 {
            return None;
        }
        let mut clock = self.lock();
        let at = *clock.index.get(id)?;
        let slot = clock.slots.get_mut(at)?;
        slot.referenced = true;
        Some(slot.key.clone())
    }

    pub(crate) fn insert(&self, id: &[u8], key: V) {
        if self.capacity == 0 {
            return;
        }
        let mut clock = self.lock();
        let clock = &mut *clock;
        if let Some(&at) = clock.index.get(id) {
            // Another thread derived the same key meanwhile; keys are deterministic, keep one.
            if let Some(slot) = clock.slots.get_mut(at) {
                slot.referenced = true;
            }
            return;
        }
        let id: Box<[u8]> = id.into();
        if clock.slots.len() < self.capacity {
            clock.index.insert(id.clone(), clock.slots.len());
            clock.slots.push(Slot {
                id,
                key,
                referenced: false,
            });
            return;
        }
        // Second chance: skip (and un-mark) recently used slots; at most one full turn.
        let len = clock.slots.len();
        let mut hand = clock.hand % len;
        while clock.slots[hand].referenced {
            clock.slots[hand].referenced = false;
            hand = (hand + 1) % len;
        }
        let old = std::mem::replace(
            &mut clock.slots[hand],
            Slot {
                id: id.clone(),
                key,
                referenced: false,
            },
        );
        clock.index.remove(&old.id);
        clock.index.insert(id, hand);
        clock.hand = (hand + 1) % len;
        // `old.key` is wiped here, by its own drop.
    }

    /// Forgets (and wipes) every cached key, e.g. after a root key is retired.
    pub(crate) fn clear(&self) {
        let mut clock = self.lock();
        clock.index.clear();
        clock.slots.clear();
        clock.hand = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf::{row_info, row_key, table_key, RowKey};
    use crate::crypto::suite::{Cipher, HashAlg};

    fn key(n: u8) -> RowKey {
        let t = table_key(HashAlg::Sha256, &[n; 32], "t").unwrap();
        row_key(
            HashAlg::Sha256,
            &t,
            &row_info(
                crate::ids::OwnerId("o"),
                crate::ids::RowId("r"),
                Cipher::Aes256Gcm,
            ),
            Cipher::Aes256Gcm,
        )
        .unwrap()
    }

    #[test]
    fn returns_what_was_inserted() {
        let cache = KeyCache::<RowKey>::new(4);
        assert!(cache.get(b"a").is_none());
        cache.insert(b"a", key(1));
        assert_eq!(cache.get(b"a").unwrap().expose(), key(1).expose());
    }

    #[test]
    fn stays_within_capacity_and_keeps_recently_used_keys() {
        let cache = KeyCache::<RowKey>::new(3);
        for (i, id) in [b"a", b"b", b"c"].iter().enumerate() {
            cache.insert(*id, key(i as u8));
        }
        // "a" is used, so the clock passes it over and evicts "b" first.
        assert!(cache.get(b"a").is_some());
        cache.insert(b"d", key(9));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(b"a").is_some());
        assert!(cache.get(b"b").is_none());
        assert!(cache.get(b"d").is_some());
        for n in 0..100u8 {
            cache.insert(&[n], key(n));
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn zero_capacity_caches_nothing_and_clear_empties() {
        let off = KeyCache::<RowKey>::new(0);
        off.insert(b"a", key(1));
        assert!(off.get(b"a").is_none());
        let cache = KeyCache::<RowKey>::new(8);
        cache.insert(b"a", key(1));
        cache.clear();
        assert!(cache.get(b"a").is_none());
        assert_eq!(cache.len(), 0);
    }
}
