//! Password hashes exactly as RabbitMQ stores them, so definitions move between warren
//! and RabbitMQ with their logins intact.
//!
//! A stored hash is `base64(salt ++ H(salt ++ utf8 password))` with a 4-byte random salt;
//! `H` is named by the user's `hashing_algorithm`: SHA-256 (RabbitMQ's default, and what
//! warren writes), SHA-512 or MD5 (read from imported definitions). An empty hash is a
//! passwordless user. Called by the user store when a password is set and at every
//! PLAIN/AMQPLAIN login. Never logs or keeps a cleartext password, and compares
//! digests in constant time (a login must not tell how much of a guess was right).

use base64::Engine;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// RabbitMQ's default `hashing_algorithm`.
pub const SHA256: &str = "rabbit_password_hashing_sha256";
pub const SHA512: &str = "rabbit_password_hashing_sha512";
pub const MD5: &str = "rabbit_password_hashing_md5";

/// Length of the random salt in front of the digest.
const SALT_LEN: usize = 4;

/// A hash function RabbitMQ can name in `hashing_algorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
    Md5,
}

impl Algorithm {
    /// The algorithm a `hashing_algorithm` value names; `None` for one RabbitMQ 3.10
    /// does not ship.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            SHA256 => Some(Algorithm::Sha256),
            SHA512 => Some(Algorithm::Sha512),
            MD5 => Some(Algorithm::Md5),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        let mut input = Vec::with_capacity(salt.len() + password.len());
        input.extend_from_slice(salt);
        input.extend_from_slice(password);
        let out = match self {
            Algorithm::Sha256 => digest::digest(&digest::SHA256, &input).as_ref().to_vec(),
            Algorithm::Sha512 => digest::digest(&digest::SHA512, &input).as_ref().to_vec(),
            Algorithm::Md5 => md5::compute(&input).0.to_vec(),
        };
        // The input held the cleartext: overwrite it before the memory goes back.
        input.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&input);
        out
    }
}

/// `password` salted and hashed with SHA-256, base64-encoded as RabbitMQ writes
/// `password_hash`. `None` only if the system's random source fails.
pub fn hash(password: &str) -> Option<String> {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new().fill(&mut salt).ok()?;
    Some(hash_with_salt(Algorithm::Sha256, salt, password))
}

fn hash_with_salt(algorithm: Algorithm, salt: [u8; SALT_LEN], password: &str) -> String {
    let mut stored = salt.to_vec();
    stored.extend_from_slice(&algorithm.digest(&salt, password.as_bytes()));
    base64::engine::general_purpose::STANDARD.encode(stored)
}

/// A stored credential, decoded once when the user is loaded or changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Empty `password_hash`: no password login at all.
    None,
    /// Salt followed by the digest.
    Salted {
        algorithm: Algorithm,
        stored: Vec<u8>,
    },
    /// A hash warren cannot check (unknown algorithm, not base64, shorter than a salt):
    /// kept and written back as read, but no password matches it.
    Unusable,
}

impl Credential {
    /// Decodes a `password_hash` and its `hashing_algorithm` (as found in definitions).
    pub fn decode(password_hash: &str, hashing_algorithm: &str) -> Credential {
        if password_hash.is_empty() {
            return Credential::None;
        }
        let Some(algorithm) = Algorithm::from_name(hashing_algorithm) else {
            return Credential::Unusable;
        };
        match base64::engine::general_purpose::STANDARD.decode(password_hash) {
            Ok(stored) if stored.len() > SALT_LEN => Credential::Salted { algorithm, stored },
            _ => Credential::Unusable,
        }
    }

    /// Whether `password` is the one this credential was made from. An empty password
    /// never is: RabbitMQ refuses it before looking at the hash.
    pub fn matches(&self, password: &str) -> bool {
        let Credential::Salted { algorithm, stored } = self else {
            return false;
        };
        if password.is_empty() {
            return false;
        }
        let (salt, expected) = stored.split_at(SALT_LEN);
        constant_time_eq(&algorithm.digest(salt, password.as_bytes()), expected)
    }
}

/// Equality whose time depends only on the lengths (which are the algorithm's).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exported by RabbitMQ 3.10.8 (`rabbitmqctl add_user identity-u1 pw`, then
    /// `export_definitions`).
    const REFERENCE_SHA256_PW: &str = "8i3vTR9eVfB2bb5LpI0PswTahgStSCv8qo+bVRHBeqoRpsG7";

    #[test]
    fn reads_a_hash_exported_by_rabbitmq() {
        let c = Credential::decode(REFERENCE_SHA256_PW, SHA256);
        assert!(c.matches("pw"));
        assert!(!c.matches("pW"));
        assert!(!c.matches(""));
    }

    /// Vectors made with Python's hashlib:
    /// `base64.b64encode(salt + hashlib.sha512(salt + b"secret").digest())`, salt
    /// `b"\x01\x02\x03\x04"`, and the same with md5.
    #[test]
    fn sha512_and_md5_hashes_from_imported_definitions() {
        let sha512 = "AQIDBPhTH2L5HGYB1LWOrn+YpvuQmVOXKGqgsuiJRIZTILRoEvblSJo/WAsym3IZTfuaIaK5KR2o5KwFfTv6KsxfMIE=";
        let md5 = "AQIDBDgk9ci8Lfh6CKE9Y0AUfmU=";
        assert!(Credential::decode(sha512, SHA512).matches("secret"));
        assert!(Credential::decode(md5, MD5).matches("secret"));
        assert!(!Credential::decode(md5, MD5).matches("Secret"));
        // The algorithm decides: the same bytes under another name do not match.
        assert!(!Credential::decode(md5, SHA256).matches("secret"));
        assert_eq!(
            hash_with_salt(Algorithm::Sha512, [1, 2, 3, 4], "secret"),
            sha512
        );
        assert_eq!(hash_with_salt(Algorithm::Md5, [1, 2, 3, 4], "secret"), md5);
    }

    #[test]
    fn new_hashes_are_salted_sha256() {
        let a = hash("pw").expect("random");
        let b = hash("pw").expect("random");
        assert_ne!(a, b, "a fresh salt each time");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .expect("base64");
        assert_eq!(decoded.len(), SALT_LEN + 32);
        assert!(Credential::decode(&a, SHA256).matches("pw"));
    }

    #[test]
    fn passwordless_and_unusable_hashes_match_nothing() {
        assert_eq!(Credential::decode("", SHA256), Credential::None);
        assert!(!Credential::None.matches("x"));
        for (hash, alg) in [
            ("AQID", SHA256),
            ("not base64!", SHA256),
            (REFERENCE_SHA256_PW, "rabbit_password_hashing_rot13"),
        ] {
            let c = Credential::decode(hash, alg);
            assert_eq!(c, Credential::Unusable, "{hash} {alg}");
            assert!(!c.matches("pw"));
        }
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(constant_time_eq(b"abc", b"abc"));
    }
}
