//! Encryption of phone numbers at rest, over the one versioned field
//! cipher, and their blind index: a keyed digest to find a citizen by phone
//! without storing the number in clear.

use anyhow::anyhow;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::field::{FieldPurpose, KeyTag, VersionedCipher, derive};
use super::keys::{KEY_LEN, Keys};
use crate::domain::phone::PhoneNumber;

const PHONE: FieldPurpose = FieldPurpose {
    aad: b"huying:contact_phone",
    // Phones were encrypted with the data keys themselves before keys were
    // derived per field; AES keeps reading and writing them so.
    aes_label: None,
    sm4_label: b"huying/phone/sm4-gcm/v1",
};

pub struct PhoneCipher {
    sealer: VersionedCipher,
    /// Keys the blind index. It is its own key, never rotated with the
    /// encryption keys: a new index key would orphan every stored index.
    index_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for PhoneCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhoneCipher({:?})", self.sealer)
    }
}

impl PhoneCipher {
    pub fn new(keys: &Keys) -> anyhow::Result<PhoneCipher> {
        Ok(PhoneCipher {
            sealer: VersionedCipher::new(&keys.data_keys, keys.data_cipher, PHONE)?,
            index_key: derive(&keys.blind_index_key, b"huying/phone-blind-index/v1"),
        })
    }

    /// A keyed digest of a number: equal numbers give equal digests.
    pub fn blind_index(&self, phone: &PhoneNumber) -> String {
        B64.encode(derive(&self.index_key, phone.expose().as_bytes()))
    }

    /// "[sm4:]v<version>:<base64 of nonce and ciphertext>".
    pub fn encrypt(&self, phone: &PhoneNumber) -> anyhow::Result<String> {
        self.sealer.seal(phone.expose().as_bytes())
    }

    pub fn decrypt(&self, stored: &str) -> anyhow::Result<PhoneNumber> {
        let plain = self.sealer.open(stored)?;
        let text = String::from_utf8(plain).map_err(|_| anyhow!("a phone is not UTF-8"))?;
        PhoneNumber::parse("contact_phone", &text).map_err(|v| anyhow!(v.reason))
    }

    /// The same number under the current algorithm and key.
    pub fn reseal(&self, stored: &str) -> anyhow::Result<String> {
        self.sealer.reseal(stored)
    }

    pub fn current(&self) -> KeyTag {
        self.sealer.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::field::Algorithm;

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("p", "13912345678").unwrap()
    }

    fn keys(versions: &[(u32, u8)], algorithm: Algorithm) -> Keys {
        let mut keys = Keys::derived_from(b"test master");
        keys.data_keys = versions.iter().map(|(v, k)| (*v, [*k; KEY_LEN])).collect();
        keys.data_cipher = algorithm;
        keys
    }

    #[test]
    fn a_phone_round_trips_and_the_ciphertext_hides_it() {
        let cipher = PhoneCipher::new(&keys(&[(1, 7)], Algorithm::Aes256Gcm)).unwrap();
        let stored = cipher.encrypt(&phone()).unwrap();
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains("12345678"));
        assert_eq!(cipher.decrypt(&stored).unwrap(), phone());
        // A fresh nonce each time: equal numbers give different ciphertexts.
        assert_ne!(stored, cipher.encrypt(&phone()).unwrap());
    }

    #[test]
    fn the_blind_index_survives_rotation_and_a_switch_to_sm4() {
        let old = PhoneCipher::new(&keys(&[(1, 7)], Algorithm::Aes256Gcm)).unwrap();
        let stored = old.encrypt(&phone()).unwrap();
        let rotated = PhoneCipher::new(&keys(&[(1, 7), (2, 9)], Algorithm::Sm4Gcm)).unwrap();
        assert!(rotated.encrypt(&phone()).unwrap().starts_with("sm4:v2:"));
        assert_eq!(rotated.decrypt(&stored).unwrap(), phone());
        assert_eq!(old.blind_index(&phone()), rotated.blind_index(&phone()));
        // Even once the old key is gone.
        let retired = PhoneCipher::new(&keys(&[(2, 9)], Algorithm::Sm4Gcm)).unwrap();
        assert_eq!(old.blind_index(&phone()), retired.blind_index(&phone()));
    }

    #[test]
    fn tampering_or_a_missing_key_is_detected() {
        let cipher = PhoneCipher::new(&keys(&[(1, 7)], Algorithm::Aes256Gcm)).unwrap();
        let stored = cipher.encrypt(&phone()).unwrap();
        assert!(cipher.decrypt(&stored.replacen("v1:", "v3:", 1)).is_err());
        assert!(cipher.decrypt(&stored[..stored.len() - 3]).is_err());
    }
}
