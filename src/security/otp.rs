//! One-time SMS codes: drawn from a CSPRNG the operating system seeds, stored
//! only as a keyed hash. Six digits are a small space, so a plain hash of a
//! leaked table would be reversed in a moment; without the key it cannot.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::citizen::OneTimeCode;

pub struct CodeHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(<key>)")
    }
}

impl CodeHasher {
    /// Derives the hashing key from a server secret, under its own label.
    pub fn derived_from(secret: &[u8]) -> CodeHasher {
        CodeHasher {
            key: hmac(secret, &[b"huying/sms-code/v1"]),
        }
    }

    /// Binds the code to the phone (its blind index), so that one code's
    /// hash says nothing about another phone's.
    pub fn hash(&self, phone_index: &str, code: &OneTimeCode) -> Vec<u8> {
        hmac(
            &self.key,
            &[phone_index.as_bytes(), b":", code.expose().as_bytes()],
        )
    }
}

/// A fresh code, uniform over 000000–999999.
pub fn new_code() -> OneTimeCode {
    // ThreadRng is a CSPRNG seeded from the operating system.
    OneTimeCode::from_number(rand::random_range(0..1_000_000))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_key_phone_and_code() {
        let hasher = CodeHasher::derived_from(b"one");
        let code = OneTimeCode::from_number(123_456);
        let hash = hasher.hash("phone-a", &code);
        assert_eq!(hash, hasher.hash("phone-a", &code));
        assert_ne!(hash, hasher.hash("phone-b", &code));
        assert_ne!(
            hash,
            hasher.hash("phone-a", &OneTimeCode::from_number(123_457))
        );
        assert_ne!(
            hash,
            CodeHasher::derived_from(b"two").hash("phone-a", &code)
        );
    }

    #[test]
    fn new_codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_code();
            assert_eq!(code.expose().len(), 6);
        }
    }
}
