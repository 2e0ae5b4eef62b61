//! Encryption of sign-in secrets at rest (TOTP secrets), over the one
//! versioned field cipher with keys derived for this one purpose, so that a
//! stolen ciphertext of one kind says nothing about another and rotation
//! and the choice of algorithm work as for personal data.

use super::field::{FieldPurpose, KeyTag, VersionedCipher};
use super::keys::Keys;
use super::totp::TotpSecret;

const TOTP: FieldPurpose = FieldPurpose {
    aad: b"huying:staff_credentials.totp_secret",
    aes_label: Some(b"huying/totp-secret/v1"),
    sm4_label: b"huying/totp-secret/sm4-gcm/v1",
};

#[derive(Debug)]
pub struct SecretCipher {
    sealer: VersionedCipher,
}

impl SecretCipher {
    pub fn new(keys: &Keys) -> anyhow::Result<SecretCipher> {
        Ok(SecretCipher {
            sealer: VersionedCipher::new(&keys.data_keys, keys.data_cipher, TOTP)?,
        })
    }

    /// "[sm4:]v<version>:<base64 of nonce and ciphertext>".
    pub fn seal_totp(&self, secret: &TotpSecret) -> anyhow::Result<String> {
        self.sealer.seal(secret.as_bytes())
    }

    pub fn open_totp(&self, stored: &str) -> anyhow::Result<TotpSecret> {
        Ok(TotpSecret::from_bytes(self.sealer.open(stored)?))
    }

    /// The same secret under the current algorithm and key.
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
    use crate::security::keys::KEY_LEN;

    fn keys(versions: &[(u32, u8)]) -> Keys {
        let mut keys = Keys::derived_from(b"test master");
        keys.data_keys = versions.iter().map(|(v, k)| (*v, [*k; KEY_LEN])).collect();
        keys
    }

    #[test]
    fn a_secret_round_trips_under_rotation_and_the_ciphertext_hides_it() {
        let secret = TotpSecret::generate();
        let old = SecretCipher::new(&keys(&[(1, 3)])).unwrap();
        let stored = old.seal_totp(&secret).unwrap();
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains(&secret.to_base32()));

        let mut rotated = keys(&[(1, 3), (2, 4)]);
        rotated.data_cipher = Algorithm::Sm4Gcm;
        let rotated = SecretCipher::new(&rotated).unwrap();
        assert_eq!(rotated.open_totp(&stored).unwrap(), secret);
        assert!(rotated.seal_totp(&secret).unwrap().starts_with("sm4:v2:"));
    }

    #[test]
    fn a_phone_ciphertext_is_not_accepted_as_a_secret() {
        let keys = keys(&[(1, 3)]);
        let phone = crate::domain::phone::PhoneNumber::parse("p", "13912345678").unwrap();
        let stored = super::super::PhoneCipher::new(&keys)
            .unwrap()
            .encrypt(&phone)
            .unwrap();
        assert!(
            SecretCipher::new(&keys)
                .unwrap()
                .open_totp(&stored)
                .is_err()
        );
    }
}
