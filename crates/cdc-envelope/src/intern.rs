//! A small, bounded cache of decoded strings that repeat from record to
//! record (the `source` block's `version`, `connector`, `name`, `db`,
//! `schema`, `table`), so that decoders hand out shared [`Str`]s instead of
//! allocating the same text for every event.
//!
//! Direct-mapped: [`StrCache::SLOTS`] slots, a string goes to the slot its
//! hash selects and replaces whatever was there (so the cache never grows,
//! and a burst of distinct values only evicts), plus the last string per
//! caller-chosen hint ([`StrCache::HINTS`] of them). Strings longer than
//! [`StrCache::MAX_LEN`] bytes are never cached: at most
//! `(SLOTS + HINTS) × MAX_LEN` bytes of text are held.

use crate::value::Str;

/// A bounded, direct-mapped string cache. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct StrCache {
    slots: Vec<Option<Str>>,
    /// The last string returned per caller-chosen hint (e.g. one per
    /// `source` field), checked before hashing.
    last: [Option<Str>; StrCache::HINTS],
}

impl Default for StrCache {
    fn default() -> Self {
        Self {
            slots: vec![None; Self::SLOTS],
            last: Default::default(),
        }
    }
}

/// The slot of a string: its length and first / last (up to) eight bytes,
/// mixed by one multiplication (constant time; collisions only evict).
fn slot_of(bytes: &[u8]) -> usize {
    let n = bytes.len().min(8);
    let mut head = [0u8; 8];
    let mut tail = [0u8; 8];
    if let (Some(h), Some(t)) = (bytes.get(..n), bytes.get(bytes.len() - n..)) {
        head[..n].copy_from_slice(h);
        tail[..n].copy_from_slice(t);
    }
    let x =
        u64::from_le_bytes(head) ^ u64::from_le_bytes(tail).rotate_left(29) ^ bytes.len() as u64;
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize & (StrCache::SLOTS - 1)
}

impl StrCache {
    /// Number of slots (a power of two): the most strings ever held.
    pub(crate) const SLOTS: usize = 64;
    /// Longer strings are returned uncached.
    pub(crate) const MAX_LEN: usize = 128;

    /// The cached string equal to `bytes`, or a new one (validated as UTF-8
    /// and cached, evicting the slot's previous string). Bytes equal to a
    /// cached string are not re-validated.
    pub(crate) fn get_or_insert(&mut self, bytes: &[u8]) -> Result<Str, std::str::Utf8Error> {
        if bytes.is_empty() {
            return Ok(Str::default());
        }
        if bytes.len() > Self::MAX_LEN {
            return std::str::from_utf8(bytes).map(Str::from);
        }
        let i = slot_of(bytes);
        if let Some(Some(hit)) = self.slots.get(i) {
            if hit.as_bytes().as_ref() == bytes {
                return Ok(hit.clone());
            }
        }
        let s = Str::from(std::str::from_utf8(bytes)?);
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(s.clone());
        }
        Ok(s)
    }

    /// Number of hints of [`StrCache::get_or_insert_at`].
    pub(crate) const HINTS: usize = 8;

    /// Like [`StrCache::get_or_insert`], first comparing with the last
    /// string returned for the same `hint` (values of one field repeat).
    pub(crate) fn get_or_insert_at(
        &mut self,
        hint: usize,
        bytes: &[u8],
    ) -> Result<Str, std::str::Utf8Error> {
        if let Some(Some(last)) = self.last.get(hint) {
            if last.as_bytes().as_ref() == bytes {
                return Ok(last.clone());
            }
        }
        let s = self.get_or_insert(bytes)?;
        if bytes.len() <= Self::MAX_LEN {
            if let Some(slot) = self.last.get_mut(hint) {
                *slot = Some(s.clone());
            }
        }
        Ok(s)
    }

    /// Number of distinct strings currently held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let mut held: Vec<&Str> = self.slots.iter().chain(&self.last).flatten().collect();
        held.sort();
        held.dedup();
        held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_share_the_cached_string() {
        let mut c = StrCache::default();
        let a = c.get_or_insert(b"postgresql").expect("utf8");
        let b = c.get_or_insert(b"postgresql").expect("utf8");
        assert_eq!(a, "postgresql");
        // Same backing buffer: no new allocation for the hit.
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded_and_evicting() {
        let mut c = StrCache::default();
        let mut first = Vec::new();
        for i in 0..10_000 {
            let s = format!("table_{i}");
            let v = c.get_or_insert(s.as_bytes()).expect("utf8");
            assert_eq!(v, s.as_str());
            if i < 4 {
                first.push(s);
            }
            assert!(c.len() <= StrCache::SLOTS);
        }
        assert!(c.len() <= StrCache::SLOTS);
        // Evicted or not, lookups stay correct.
        for s in &first {
            assert_eq!(c.get_or_insert(s.as_bytes()).expect("utf8"), s.as_str());
        }
    }

    #[test]
    fn collisions_replace_the_slot() {
        let mut c = StrCache::default();
        // Find two strings that map to the same slot.
        let a = "a0".to_owned();
        let b = (1..)
            .map(|i| format!("b{i}"))
            .find(|b| slot_of(b.as_bytes()) == slot_of(a.as_bytes()))
            .expect("a colliding string");
        let sa = c.get_or_insert(a.as_bytes()).expect("utf8");
        let sb = c.get_or_insert(b.as_bytes()).expect("utf8");
        assert_eq!(sa, a.as_str());
        assert_eq!(sb, b.as_str());
        assert_eq!(c.len(), 1);
        // `a` comes back right (a fresh copy, since it was evicted).
        let again = c.get_or_insert(a.as_bytes()).expect("utf8");
        assert_eq!(again, a.as_str());
        assert_ne!(again.as_bytes().as_ptr(), sa.as_bytes().as_ptr());
    }

    #[test]
    fn hints_remember_the_last_value_per_field() {
        let mut c = StrCache::default();
        let a = c.get_or_insert_at(0, b"public").expect("utf8");
        let b = c.get_or_insert_at(1, b"employees").expect("utf8");
        assert_eq!(c.get_or_insert_at(0, b"public").expect("utf8"), "public");
        assert_eq!(
            c.get_or_insert_at(0, b"public")
                .expect("utf8")
                .as_bytes()
                .as_ptr(),
            a.as_bytes().as_ptr()
        );
        assert_eq!(
            c.get_or_insert_at(1, b"employees")
                .expect("utf8")
                .as_bytes()
                .as_ptr(),
            b.as_bytes().as_ptr()
        );
        // A new value for a hint replaces it; out-of-range hints just skip it.
        assert_eq!(c.get_or_insert_at(0, b"other").expect("utf8"), "other");
        assert_eq!(c.get_or_insert_at(99, b"x").expect("utf8"), "x");
        assert!(c.get_or_insert_at(2, b"\xff").is_err());
        let long = "y".repeat(StrCache::MAX_LEN + 1);
        assert_eq!(
            c.get_or_insert_at(3, long.as_bytes()).expect("utf8"),
            long.as_str()
        );
        assert!(c
            .last
            .iter()
            .flatten()
            .all(|s| s.len() <= StrCache::MAX_LEN));
        assert!(c.len() <= StrCache::SLOTS + StrCache::HINTS);
        for i in 0..1000 {
            let s = format!("v{i}");
            assert_eq!(
                c.get_or_insert_at(i % 3, s.as_bytes()).expect("utf8"),
                s.as_str()
            );
        }
        assert!(c.len() <= StrCache::SLOTS + StrCache::HINTS);
    }

    #[test]
    fn long_empty_and_invalid() {
        let mut c = StrCache::default();
        let long = "x".repeat(StrCache::MAX_LEN + 1);
        assert_eq!(
            c.get_or_insert(long.as_bytes()).expect("utf8"),
            long.as_str()
        );
        assert_eq!(c.len(), 0, "long strings are not cached");
        assert_eq!(c.get_or_insert(b"").expect("utf8"), "");
        assert_eq!(c.len(), 0);
        assert!(c.get_or_insert(b"\xff\xfe").is_err());
        assert!(c.get_or_insert(&[b'y'; 200][..]).is_ok());
        let mut bad = vec![b'z'; StrCache::MAX_LEN + 5];
        bad[3] = 0xff;
        assert!(c.get_or_insert(&bad).is_err());
        assert_eq!(c.len(), 0);
    }
}
