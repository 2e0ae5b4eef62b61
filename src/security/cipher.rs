//! Encryption of personal data at rest (contact phone numbers), with the key
//! version written into each ciphertext so that keys can be rotated without
//! rewriting old rows at once.

use std::collections::BTreeMap;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::keys::KEY_LEN;
use crate::domain::phone::PhoneNumber;

const NONCE_LEN: usize = 12;
/// Binds ciphertexts to their purpose: a phone ciphertext cannot be passed
/// off as another kind of field.
const PHONE_AAD: &[u8] = b"huying:contact_phone";

pub struct PhoneCipher {
    keys: BTreeMap<u32, Aes256Gcm>,
    current: u32,
    /// Keys the blind index; derived from the oldest key so that rotating
    /// encryption keys does not change the index.
    index_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for PhoneCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhoneCipher(current key v{})", self.current)
    }
}

impl PhoneCipher {
    pub fn new(keys: &[(u32, [u8; KEY_LEN])]) -> anyhow::Result<PhoneCipher> {
        let Some((_, oldest)) = keys.iter().min_by_key(|(version, _)| *version) else {
            bail!("at least one personal-data key is needed");
        };
        let index_key = hmac_sha256(oldest, b"huying/phone-blind-index/v1");
        let keys: BTreeMap<u32, Aes256Gcm> = keys
            .iter()
            .map(|(version, key)| (*version, Aes256Gcm::new(&(*key).into())))
            .collect();
        let current = keys.keys().next_back().copied().unwrap_or_default();
        Ok(PhoneCipher {
            keys,
            current,
            index_key,
        })
    }

    /// A keyed digest of a number: equal numbers give equal digests, so a
    /// citizen can be found by phone without storing the number in clear.
    pub fn blind_index(&self, phone: &PhoneNumber) -> String {
        B64.encode(hmac_sha256(&self.index_key, phone.expose().as_bytes()))
    }

    /// "v<version>:<base64 of nonce and ciphertext>".
    pub fn encrypt(&self, phone: &PhoneNumber) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let payload = Payload {
            msg: phone.expose().as_bytes(),
            aad: PHONE_AAD,
        };
        let sealed = self.keys[&self.current]
            .encrypt(&Nonce::<Aes256Gcm>::from(nonce), payload)
            .map_err(|_| anyhow!("Failed to encrypt a phone number"))?;

        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("v{}:{}", self.current, B64.encode(blob)))
    }

    pub fn decrypt(&self, stored: &str) -> anyhow::Result<PhoneNumber> {
        let (version, body) = stored
            .strip_prefix('v')
            .and_then(|rest| rest.split_once(':'))
            .context("a phone ciphertext must start with v<version>:")?;
        let version: u32 = version.parse().context("bad key version in a ciphertext")?;
        let key = self
            .keys
            .get(&version)
            .with_context(|| format!("personal-data key v{version} is not configured"))?;

        let blob = B64
            .decode(body)
            .context("a phone ciphertext is not base64")?;
        if blob.len() <= NONCE_LEN {
            bail!("a phone ciphertext is too short");
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().context("bad nonce length")?;
        let payload = Payload {
            msg: sealed,
            aad: PHONE_AAD,
        };
        let plain = key
            .decrypt(&Nonce::<Aes256Gcm>::from(nonce), payload)
            .map_err(|_| anyhow!("a phone ciphertext failed authentication"))?;
        let text = String::from_utf8(plain).context("a decrypted phone is not UTF-8")?;
        PhoneNumber::parse("contact_phone", &text).map_err(|v| anyhow!(v.reason))
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("p", "13912345678").unwrap()
    }

    #[test]
    fn a_phone_round_trips_and_the_ciphertext_hides_it() {
        let cipher = PhoneCipher::new(&[(1, [7; KEY_LEN])]).unwrap();
        let stored = cipher.encrypt(&phone()).unwrap();
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains("12345678"));
        assert_eq!(cipher.decrypt(&stored).unwrap(), phone());
        // A fresh nonce each time: equal numbers give different ciphertexts.
        assert_ne!(stored, cipher.encrypt(&phone()).unwrap());
    }

    #[test]
    fn old_versions_still_decrypt_after_rotation() {
        let old = PhoneCipher::new(&[(1, [7; KEY_LEN])]).unwrap();
        let stored = old.encrypt(&phone()).unwrap();
        let rotated = PhoneCipher::new(&[(1, [7; KEY_LEN]), (2, [9; KEY_LEN])]).unwrap();
        assert!(rotated.encrypt(&phone()).unwrap().starts_with("v2:"));
        assert_eq!(rotated.decrypt(&stored).unwrap(), phone());
    }

    #[test]
    fn tampering_or_a_missing_key_is_detected() {
        let cipher = PhoneCipher::new(&[(1, [7; KEY_LEN])]).unwrap();
        let stored = cipher.encrypt(&phone()).unwrap();
        let mut tampered = stored.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            cipher
                .decrypt(std::str::from_utf8(&tampered).unwrap())
                .is_err()
        );
        assert!(cipher.decrypt(&stored.replacen("v1:", "v3:", 1)).is_err());
    }
}
