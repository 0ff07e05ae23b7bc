//! The hash RabbitMQ's consistent-hash plugin routes by, reproduced so that a key lands
//! on the same binding as on RabbitMQ 3.10: `erlang:phash2` of the value (ERTS's
//! `make_hash2`, Bob Jenkins' lookup2 mixing, kept to 27 bits), then the plugin's jump
//! consistent hash, whose steps draw from Erlang's `exs1024` generator (xorshift1024*,
//! seeded by the `{K, K, K}` triple through xorshift64*).
//!
//! Called by `consistent_hash` (routing under the topology read lock): pure arithmetic, no
//! allocation for a binary, a few hundred nanoseconds for the 16-word generator state.
//! Written from the published algorithms and checked against the reference broker's
//! outputs (see the tests); Erlang terms other than binaries, small and 64-bit integers,
//! atoms and 2-tuples of them never reach it.

/// `0x9e3779b9` times 2, 3, 9, 10, 11 and 13, modulo 2^32: make_hash2's per-type constants.
const HCONST: u32 = 0x9e37_79b9;
const HCONST_3: u32 = 0xdaa6_6d2b;
const HCONST_9: u32 = 0x8ff3_4781;
const HCONST_10: u32 = 0x2e2a_c13a;
const HCONST_11: u32 = 0xcc62_3af3;
const HCONST_13: u32 = 0x08d1_2e65;
const PHASH2_MASK: u32 = (1 << 27) - 1;

/// An Erlang term, as far as the plugin hashes them.
#[derive(Debug, Clone, Copy)]
pub enum Term<'a> {
    Binary(&'a [u8]),
    Atom(&'a str),
    Int(i64),
    /// A 2-tuple, as `rabbit_misc:table_lookup` returns a header: `{Type, Value}`.
    Pair(&'a str, &'a Term<'a>),
}

/// Jenkins' mix, the final word.
fn mix(a: u32, b: u32, c: u32) -> u32 {
    mix3(a, b, c).2
}

/// make_hash2's step for two 32-bit words.
fn hash_2(hash: u32, x: u32, y: u32, constant: u32) -> u32 {
    mix(constant.wrapping_add(x), constant.wrapping_add(y), hash)
}

/// Bob Jenkins' lookup2 over `bytes`, little-endian words, `init` as the running hash.
fn block_hash(bytes: &[u8], init: u32) -> u32 {
    let word = |b: &[u8]| b.iter().rev().fold(0u32, |w, &x| (w << 8) | u32::from(x));
    let (mut a, mut b, mut c) = (HCONST, HCONST, init);
    let mut chunks = bytes.chunks_exact(12);
    for k in &mut chunks {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        (a, b, c) = mix3(a, b, c);
    }
    let rest = chunks.remainder();
    c = c.wrapping_add(bytes.len() as u32);
    let part = |from: usize, to: usize| word(rest.get(from..to.min(rest.len())).unwrap_or(&[]));
    a = a.wrapping_add(part(0, 4));
    b = b.wrapping_add(part(4, 8));
    // The low byte of c holds the length: the last bytes go above it.
    c = c.wrapping_add(part(8, 11) << 8);
    mix(a, b, c)
}

/// Jenkins' mix of three words (block_hash carries all three between blocks).
fn mix3(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 13);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 8);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 13);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 12);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 16);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 5);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 3);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 10);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 15);
    (a, b, c)
}

/// An atom's hash as the atom table keeps it (hashpjw over its latin-1 name).
fn atom_hash(name: &str) -> u32 {
    name.bytes().fold(0u32, |h, v| {
        let h = (h << 4).wrapping_add(u32::from(v));
        let g = h & 0xf000_0000;
        if g != 0 {
            (h ^ (g >> 24)) ^ g
        } else {
            h
        }
    })
}

/// make_hash2 of `term` continuing from `hash` (0 for a term at the top).
fn hash2(term: &Term<'_>, hash: u32) -> u32 {
    match *term {
        Term::Binary([]) => HCONST_13.wrapping_add(hash),
        Term::Binary(b) => block_hash(b, HCONST_13.wrapping_add(hash)),
        // An atom at the top is its table hash unmixed; inside a term it is mixed.
        Term::Atom(a) if hash == 0 => atom_hash(a),
        Term::Atom(a) => hash_2(hash, atom_hash(a), 0, HCONST_3),
        // Integers of 28 bits are "small" (negatives mixed twice); wider ones hash as
        // bignums: one 64-bit digit of the magnitude, split in two words.
        Term::Int(i) if (-(1 << 27)..(1 << 27)).contains(&i) => {
            let y = i as i32;
            let hash = if y < 0 {
                hash_2(hash, y.wrapping_neg() as u32, 0, HCONST)
            } else {
                hash
            };
            hash_2(hash, y as u32, 0, HCONST)
        }
        Term::Int(i) => {
            let magnitude = i.unsigned_abs();
            let sign = if i < 0 { HCONST_10 } else { HCONST_11 };
            hash_2(hash, magnitude as u32, (magnitude >> 32) as u32, sign)
        }
        Term::Pair(first, second) => {
            let hash = hash_2(hash, 2, 0, HCONST_9);
            let hash = hash2(&Term::Atom(first), hash);
            hash2(second, hash)
        }
    }
}

/// `erlang:phash2(Term)`.
pub fn phash2(term: &Term<'_>) -> u32 {
    hash2(term, 0) & PHASH2_MASK
}

/// Erlang's `exs1024` generator: 16 words, xorshift1024*.
struct Exs1024 {
    words: [u64; 16],
    at: usize,
}

impl Exs1024 {
    /// `rand:seed_s(exs1024, {K, K, K})`.
    fn seeded(k: u64) -> Self {
        const MASK21: u64 = (1 << 21) - 1;
        let part = |prime: u64| (((k & MASK21) + 1) * prime) & MASK21;
        let mut x = (part(2_097_131) << 43) | (part(2_097_133) << 22) | (part(2_097_143) << 1) | 1;
        // xorshift64* fills the ring; Erlang lists the last word drawn first.
        let mut words = [0u64; 16];
        for w in words.iter_mut().rev() {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *w = x.wrapping_mul(2_685_821_657_736_338_717);
        }
        Exs1024 { words, at: 0 }
    }

    /// `rand:uniform_s/1` for exs1024: the next word over 2^64.
    fn uniform(&mut self) -> f64 {
        let s0 = self.words[self.at];
        self.at = (self.at + 1) % 16;
        let mut s1 = self.words[self.at];
        s1 ^= s1 << 31;
        s1 ^= s1 >> 11;
        let next = (s0 ^ (s0 >> 30)) ^ s1;
        self.words[self.at] = next;
        next.wrapping_mul(1_181_783_497_276_652_981) as f64 / 18_446_744_073_709_551_616.0
    }
}

/// The plugin's jump consistent hash: the bucket in [0, buckets) for a phash2 value.
pub fn jump(key: u32, buckets: u64) -> u64 {
    if buckets <= 1 {
        return 0;
    }
    let mut rng = Exs1024::seeded(u64::from(key));
    let (mut at, mut next) = (0u64, 0u64);
    while next < buckets {
        at = next;
        let r = rng.uniform();
        let jump = (at + 1) as f64 / r;
        // trunc(J) >= buckets exactly when J >= buckets; r = 0 (2^-64) jumps past the end.
        if jump.is_nan() || jump >= buckets as f64 {
            break;
        }
        next = jump as u64;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values the reference RabbitMQ 3.10.8 (OTP 25) gave for `erlang:phash2/1`.
    #[test]
    fn phash2_matches_erlang() {
        let bin = |s: &'static str| Term::Binary(s.as_bytes());
        assert_eq!(phash2(&bin("key-1")), 5_452_885);
        assert_eq!(phash2(&bin("")), 13_708_901);
        assert_eq!(phash2(&bin("a")), 112_802_447);
        assert_eq!(phash2(&bin("0123456789abcdefXYZ")), 106_687_168);
        assert_eq!(phash2(&Term::Atom("undefined")), 45_914_356);
        assert_eq!(phash2(&Term::Atom("longstr")), 56_945_346);
        assert_eq!(phash2(&Term::Pair("longstr", &bin("u1"))), 80_321_317);
        assert_eq!(phash2(&Term::Pair("long", &Term::Int(5))), 129_380_108);
        assert_eq!(phash2(&Term::Pair("signedint", &Term::Int(-7))), 44_902_276);
        assert_eq!(phash2(&Term::Pair("long", &Term::Int(1 << 40))), 93_748_608);
        assert_eq!(phash2(&Term::Pair("bool", &Term::Atom("true"))), 32_030_443);
    }

    /// `element(1, rand:uniform_s(rand:seed_s(exs1024, {K, K, K})))` on the reference.
    #[test]
    fn exs1024_matches_erlang() {
        for (k, expected) in [
            (0, 0.294_232_217_744_804_2),
            (5, 0.352_440_983_626_264_2),
            (5_452_885, 0.810_228_641_253_190_6),
            (134_217_727, 0.403_937_041_687_543_9),
        ] {
            assert_eq!(Exs1024::seeded(k).uniform(), expected, "{k}");
        }
    }
}
