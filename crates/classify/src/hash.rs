//! The token hash: a small FxHash-style multiply-rotate over 8-byte words with a final
//! avalanche, so that hashes can key an identity-hashed map and be truncated by sorting.
//! Not cryptographic: a sender who finds collisions gains only what the colliding
//! token's statistics give, which a word of their choosing gives anyway.

use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x517c_c1b7_2722_0a95;

/// Streaming hasher for one token: a feature kind (seed), then any number of byte runs.
#[derive(Clone, Copy)]
pub(crate) struct TokenHash(u64);

impl TokenHash {
    /// Starts a token of the given kind; different kinds never share a hash stream.
    pub(crate) fn new(kind: u64) -> Self {
        TokenHash(mix(kind ^ K))
    }

    /// Adds bytes.
    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Self {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length ends every run so that ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        self.0 = (self.0.rotate_left(5) ^ bytes.len() as u64).wrapping_mul(K);
        self
    }

    /// The token's hash.
    pub(crate) fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// Combines two token hashes with a distance into the hash of a word pair (OSB feature).
pub(crate) fn pair(first: u64, second: u64, distance: u64) -> u64 {
    mix(first.rotate_left(23)
        ^ second.wrapping_mul(K)
        ^ distance.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The murmur3 64-bit finalizer: every input bit flips each output bit with about even odds.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hashes a whole byte string (message digests, checksums).
pub(crate) fn of_bytes(kind: u64, bytes: &[u8]) -> u64 {
    TokenHash::new(kind).bytes(bytes).finish()
}

/// Map keys here are already uniform 64-bit hashes: hashing them again (SipHash) would
/// only cost time.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Prehashed;

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

/// The hasher of [`Prehashed`]: passes a `u64` key through.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = of_bytes(self.0, bytes);
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}
