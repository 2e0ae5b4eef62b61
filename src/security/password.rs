//! Password hashing with Argon2id. Hashes are PHC strings
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), each with its own random salt,
//! so the parameters can be raised later without breaking stored hashes.
//! Both functions take tens of milliseconds of CPU on purpose: callers on
//! the async runtime run them with `spawn_blocking`.

use std::sync::OnceLock;

use anyhow::anyhow;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::staff::Password;

/// OWASP's first recommended set for Argon2id: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
        None,
    )
    .expect("the default Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &Password) -> anyhow::Result<String> {
    hasher()
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow!("Failed to hash a password: {error}"))
}

/// Whether `password` is the one `stored` was made from. The parameters
/// are read from the stored string.
pub fn verify(password: &Password, stored: &str) -> bool {
    hasher()
        .verify_password(password.expose().as_bytes(), stored)
        .is_ok()
}

/// Spends the time of one verification on a hash no password matches, so
/// that a sign-in for an unknown username takes as long as a real one.
pub fn verify_nothing(password: &Password) {
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy =
        DECOY.get_or_init(|| hash(&Password::presented(random_password(24))).unwrap_or_default());
    let _ = verify(password, decoy);
}

/// Letters and digits that cannot be mistaken for one another when read
/// aloud or copied from a screen (no 0/O, 1/l/I).
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

fn random_password(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes[..]);
    // 256 is not a multiple of the alphabet's size; the slight bias this
    // gives some characters costs far less than a bit of the 130 bits.
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A one-time initial password an administrator hands over: 16 characters
/// in groups of four, which meets the password policy.
pub fn initial_password() -> Password {
    loop {
        let raw = random_password(16);
        let grouped = raw
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        if let Ok(password) = Password::new_for("password", grouped, "") {
            return password;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_salts_differ() {
        let password = Password::presented("Correct-horse-42".to_owned());
        let stored = hash(&password).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(&password, &stored));
        assert!(!verify(
            &Password::presented("correct-horse-42".to_owned()),
            &stored
        ));
        assert_ne!(stored, hash(&password).unwrap());
        assert!(!verify(&password, "not a hash"));
    }

    #[test]
    fn initial_passwords_meet_the_policy_and_differ() {
        let first = initial_password();
        assert_eq!(first.expose().len(), 19);
        assert!(Password::new_for("p", first.expose().to_owned(), "").is_ok());
        assert_ne!(first, initial_password());
    }
}
