//! Encryption of sign-in secrets at rest (TOTP secrets). The keys come from
//! the same versioned personal-data keys as the phone cipher, each derived
//! for this one purpose, so a stolen ciphertext of one kind says nothing
//! about another and key rotation works the same way.

use std::collections::BTreeMap;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::keys::KEY_LEN;
use super::totp::TotpSecret;

const NONCE_LEN: usize = 12;
const DERIVATION_LABEL: &[u8] = b"huying/totp-secret/v1";
/// Ties a ciphertext to its column: it cannot be moved to another field.
const TOTP_AAD: &[u8] = b"huying:staff_credentials.totp_secret";

// TODO(security): `PhoneCipher` seals and opens the same way with its own
// associated data; both could share one versioned-AEAD type.
pub struct SecretCipher {
    keys: BTreeMap<u32, Aes256Gcm>,
    current: u32,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretCipher(current key v{})", self.current)
    }
}

impl SecretCipher {
    /// Derives one key per personal-data key version.
    pub fn new(data_keys: &[(u32, [u8; KEY_LEN])]) -> anyhow::Result<SecretCipher> {
        let keys: BTreeMap<u32, Aes256Gcm> = data_keys
            .iter()
            .map(|(version, key)| (*version, Aes256Gcm::new(&derive(key).into())))
            .collect();
        let Some(current) = keys.keys().next_back().copied() else {
            bail!("at least one personal-data key is needed");
        };
        Ok(SecretCipher { keys, current })
    }

    /// "v<version>:<base64 of nonce and ciphertext>".
    pub fn seal_totp(&self, secret: &TotpSecret) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: TOTP_AAD,
        };
        let sealed = self.keys[&self.current]
            .encrypt(&Nonce::<Aes256Gcm>::from(nonce), payload)
            .map_err(|_| anyhow!("Failed to encrypt a TOTP secret"))?;

        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("v{}:{}", self.current, B64.encode(blob)))
    }

    pub fn open_totp(&self, stored: &str) -> anyhow::Result<TotpSecret> {
        let (version, body) = stored
            .strip_prefix('v')
            .and_then(|rest| rest.split_once(':'))
            .context("a sealed secret must start with v<version>:")?;
        let version: u32 = version
            .parse()
            .context("bad key version in a sealed secret")?;
        let key = self
            .keys
            .get(&version)
            .with_context(|| format!("personal-data key v{version} is not configured"))?;

        let blob = B64.decode(body).context("a sealed secret is not base64")?;
        if blob.len() <= NONCE_LEN {
            bail!("a sealed secret is too short");
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().context("bad nonce length")?;
        let payload = Payload {
            msg: sealed,
            aad: TOTP_AAD,
        };
        let plain = key
            .decrypt(&Nonce::<Aes256Gcm>::from(nonce), payload)
            .map_err(|_| anyhow!("a sealed secret failed authentication"))?;
        Ok(TotpSecret::from_bytes(plain))
    }
}

fn derive(data_key: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut mac = Hmac::<Sha256>::new_from_slice(data_key).expect("HMAC takes any key length");
    mac.update(DERIVATION_LABEL);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_round_trips_under_rotation_and_the_ciphertext_hides_it() {
        let secret = TotpSecret::generate();
        let old = SecretCipher::new(&[(1, [3; KEY_LEN])]).unwrap();
        let stored = old.seal_totp(&secret).unwrap();
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains(&secret.to_base32()));

        let rotated = SecretCipher::new(&[(1, [3; KEY_LEN]), (2, [4; KEY_LEN])]).unwrap();
        assert_eq!(rotated.open_totp(&stored).unwrap(), secret);
        assert!(rotated.seal_totp(&secret).unwrap().starts_with("v2:"));
    }

    #[test]
    fn a_phone_ciphertext_is_not_accepted_as_a_secret() {
        let keys = [(1, [3; KEY_LEN])];
        let phone = crate::domain::phone::PhoneNumber::parse("p", "13912345678").unwrap();
        let phone_cipher = super::super::PhoneCipher::new(&keys).unwrap();
        let stored = phone_cipher.encrypt(&phone).unwrap();
        assert!(
            SecretCipher::new(&keys)
                .unwrap()
                .open_totp(&stored)
                .is_err()
        );
    }
}
