//! A fast, non-cryptographic hasher for maps keyed by line ids.

use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's hasher): ids are not attacker-chosen keys here, and it is
/// several times faster than SipHash on a million short ids.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        // murmur3's finalizer: spread similar ids (L0000001, L0000002) over
        // every bit, low (bucket) and high (control byte) alike
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
}

pub type BuildFx = BuildHasherDefault<Fx>;
