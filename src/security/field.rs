//! The one way personal data and sign-in secrets are encrypted at rest: an
//! AEAD per algorithm and key version, behind `FieldCipher`, and a
//! `VersionedCipher` that writes under the configured algorithm and current
//! key and reads whatever older algorithm and version a value was written
//! under, so that a switch of either never strands old rows.
//!
//! Stored form: `v<version>:<base64>` for AES-256-GCM (the form values had
//! from the start), `sm4:v<version>:<base64>` for SM4-GCM; the base64 is of
//! the 12-byte nonce followed by the ciphertext and its 16-byte tag.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use aes_gcm::{Aes256Gcm, AesGcm};
use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sm4::Sm4;

use super::keys::KEY_LEN;

const NONCE_LEN: usize = 12;

type Sm4Gcm = AesGcm<Sm4, U12>;

/// The AEAD algorithms personal data may be written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Algorithm {
    /// The default.
    #[default]
    Aes256Gcm,
    /// SM4 (GB/T 32907) in GCM mode, for deployments held to China's
    /// commercial-cryptography rules.
    Sm4Gcm,
}

impl Algorithm {
    /// The configuration name (`HUYING_DATA_CIPHER`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm",
            Algorithm::Sm4Gcm => "sm4-gcm",
        }
    }

    pub fn parse(text: &str) -> Option<Algorithm> {
        [Algorithm::Aes256Gcm, Algorithm::Sm4Gcm]
            .into_iter()
            .find(|algorithm| algorithm.as_str() == text.trim())
    }

    /// What leads a stored value before its key version.
    fn label(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "",
            Algorithm::Sm4Gcm => "sm4:",
        }
    }
}

/// Which algorithm and key version a stored value was written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyTag {
    pub algorithm: Algorithm,
    pub version: u32,
}

impl KeyTag {
    /// The leading text of every value written under this tag.
    pub fn prefix(self) -> String {
        format!("{}v{}:", self.algorithm.label(), self.version)
    }

    /// Splits a stored value into its tag and its base64 body.
    fn split(stored: &str) -> anyhow::Result<(KeyTag, &str)> {
        let (algorithm, rest) = match stored.strip_prefix(Algorithm::Sm4Gcm.label()) {
            Some(rest) => (Algorithm::Sm4Gcm, rest),
            None => (Algorithm::Aes256Gcm, stored),
        };
        let (version, body) = rest
            .strip_prefix('v')
            .and_then(|rest| rest.split_once(':'))
            .context("a stored ciphertext must start with [sm4:]v<version>:")?;
        let version = version
            .parse()
            .context("bad key version in a stored ciphertext")?;
        Ok((KeyTag { algorithm, version }, body))
    }
}

impl fmt::Display for KeyTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} key v{}", self.algorithm.as_str(), self.version)
    }
}

/// One algorithm under one key: seals and opens with a caller's nonce and
/// associated data. Implementations never print their key.
pub trait FieldCipher: Send + Sync {
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plain: &[u8]) -> anyhow::Result<Vec<u8>>;

    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) -> anyhow::Result<Vec<u8>>;
}

/// Any RustCrypto AEAD with a 96-bit nonce.
struct Keyed<A>(A);

impl<A> FieldCipher for Keyed<A>
where
    A: Aead<NonceSize = U12> + Send + Sync,
{
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let payload = Payload { msg: plain, aad };
        self.0
            .encrypt(&Nonce::<A>::from(*nonce), payload)
            .map_err(|_| anyhow!("Failed to encrypt a field"))
    }

    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        let payload = Payload { msg: sealed, aad };
        self.0
            .decrypt(&Nonce::<A>::from(*nonce), payload)
            .map_err(|_| anyhow!("a stored ciphertext failed authentication"))
    }
}

/// The cipher of one kind of field: its own keys (derived from the
/// versioned data keys with the field's label, per algorithm), its
/// associated data, and the algorithm and version new values get.
pub struct VersionedCipher {
    ciphers: BTreeMap<KeyTag, Box<dyn FieldCipher>>,
    current: KeyTag,
    aad: &'static [u8],
}

impl fmt::Debug for VersionedCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionedCipher(writes under {})", self.current)
    }
}

/// How a field's keys come from the data keys.
#[derive(Debug, Clone, Copy)]
pub struct FieldPurpose {
    /// Binds each ciphertext to its column: it cannot be passed off as
    /// another kind of field.
    pub aad: &'static [u8],
    /// Derives the field's AES key from a data key; `None` uses the data
    /// key itself (contact phones, encrypted so before derivation existed).
    pub aes_label: Option<&'static [u8]>,
    /// Derives the field's SM4 key (128 bits) from a data key.
    pub sm4_label: &'static [u8],
}

impl VersionedCipher {
    /// Every configured key version under both algorithms reads; the
    /// highest version under `algorithm` writes.
    pub fn new(
        data_keys: &[(u32, [u8; KEY_LEN])],
        algorithm: Algorithm,
        purpose: FieldPurpose,
    ) -> anyhow::Result<VersionedCipher> {
        let Some(version) = data_keys.iter().map(|(version, _)| *version).max() else {
            bail!("at least one personal-data key is needed");
        };
        let mut ciphers: BTreeMap<KeyTag, Box<dyn FieldCipher>> = BTreeMap::new();
        for (version, key) in data_keys {
            let aes_key = purpose.aes_label.map_or(*key, |label| derive(key, label));
            let sm4_key = derive(key, purpose.sm4_label);
            let sm4_key: [u8; 16] = sm4_key[..16].try_into().context("an SM4 key is 16 bytes")?;
            let aes = KeyTag {
                algorithm: Algorithm::Aes256Gcm,
                version: *version,
            };
            let sm4 = KeyTag {
                algorithm: Algorithm::Sm4Gcm,
                version: *version,
            };
            ciphers.insert(aes, Box::new(Keyed(Aes256Gcm::new(&aes_key.into()))));
            ciphers.insert(sm4, Box::new(Keyed(Sm4Gcm::new(&sm4_key.into()))));
        }
        Ok(VersionedCipher {
            ciphers,
            current: KeyTag { algorithm, version },
            aad: purpose.aad,
        })
    }

    /// The algorithm and key version new values are written under.
    pub fn current(&self) -> KeyTag {
        self.current
    }

    /// Whether a stored value is already under the current algorithm and key.
    pub fn is_current(&self, stored: &str) -> bool {
        KeyTag::split(stored).is_ok_and(|(tag, _)| tag == self.current)
    }

    /// Encrypts under the current algorithm and key, with a fresh nonce.
    pub fn seal(&self, plain: &[u8]) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let sealed = self.ciphers[&self.current].seal(&nonce, self.aad, plain)?;

        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("{}{}", self.current.prefix(), B64.encode(blob)))
    }

    /// Decrypts a value written under any configured algorithm and key.
    pub fn open(&self, stored: &str) -> anyhow::Result<Vec<u8>> {
        let (tag, body) = KeyTag::split(stored)?;
        let cipher = self
            .ciphers
            .get(&tag)
            .with_context(|| format!("{tag} is not configured"))?;

        let blob = B64
            .decode(body)
            .context("a stored ciphertext is not base64")?;
        if blob.len() <= NONCE_LEN {
            bail!("a stored ciphertext is too short");
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().context("bad nonce length")?;
        cipher.open(&nonce, self.aad, sealed)
    }

    /// The same value under the current algorithm and key (key rotation).
    pub fn reseal(&self, stored: &str) -> anyhow::Result<String> {
        let plain = self.open(stored)?;
        self.seal(&plain)
    }
}

/// A key for one purpose from a data key: HMAC-SHA-256 with the label.
pub(crate) fn derive(key: &[u8], label: &[u8]) -> [u8; KEY_LEN] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PURPOSE: FieldPurpose = FieldPurpose {
        aad: b"test:field",
        aes_label: Some(b"test/aes"),
        sm4_label: b"test/sm4",
    };

    fn cipher(keys: &[(u32, [u8; KEY_LEN])], algorithm: Algorithm) -> VersionedCipher {
        VersionedCipher::new(keys, algorithm, PURPOSE).unwrap()
    }

    #[test]
    fn sm4_values_carry_their_algorithm_and_round_trip() {
        let sm4 = cipher(&[(1, [5; KEY_LEN])], Algorithm::Sm4Gcm);
        let stored = sm4.seal(b"secret").unwrap();
        assert!(stored.starts_with("sm4:v1:"), "{stored}");
        assert_eq!(sm4.open(&stored).unwrap(), b"secret");
        assert!(sm4.is_current(&stored));
    }

    #[test]
    fn a_switch_of_algorithm_or_key_still_reads_old_values() {
        let old = cipher(&[(1, [5; KEY_LEN])], Algorithm::Aes256Gcm);
        let aes_v1 = old.seal(b"13912345678").unwrap();
        assert!(aes_v1.starts_with("v1:"), "{aes_v1}");

        let keys = [(1, [5; KEY_LEN]), (2, [6; KEY_LEN])];
        let switched = cipher(&keys, Algorithm::Sm4Gcm);
        assert_eq!(switched.open(&aes_v1).unwrap(), b"13912345678");
        assert!(!switched.is_current(&aes_v1));

        let resealed = switched.reseal(&aes_v1).unwrap();
        assert!(resealed.starts_with("sm4:v2:"), "{resealed}");
        assert!(switched.is_current(&resealed));
        assert_eq!(
            cipher(&keys, Algorithm::Aes256Gcm).open(&resealed).unwrap(),
            b"13912345678"
        );
    }

    #[test]
    fn tampering_a_missing_key_or_another_purpose_is_refused() {
        let keys = [(1, [5; KEY_LEN])];
        let aes = cipher(&keys, Algorithm::Aes256Gcm);
        let stored = aes.seal(b"x1").unwrap();
        let mut tampered = stored.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(aes.open(std::str::from_utf8(&tampered).unwrap()).is_err());
        assert!(aes.open(&stored.replacen("v1:", "v3:", 1)).is_err());
        assert!(aes.open(&format!("sm4:{stored}")).is_err());

        let other = FieldPurpose {
            aad: b"test:other",
            ..PURPOSE
        };
        let other = VersionedCipher::new(&keys, Algorithm::Aes256Gcm, other).unwrap();
        assert!(other.open(&stored).is_err());
    }

    #[test]
    fn debug_names_the_tag_and_never_a_key() {
        let text = format!("{:?}", cipher(&[(7, [0xab; KEY_LEN])], Algorithm::Sm4Gcm));
        assert_eq!(text, "VersionedCipher(writes under sm4-gcm key v7)");
    }

    #[test]
    fn algorithms_parse_from_their_configuration_names() {
        assert_eq!(Algorithm::parse("sm4-gcm"), Some(Algorithm::Sm4Gcm));
        assert_eq!(Algorithm::parse("aes-256-gcm"), Some(Algorithm::Aes256Gcm));
        assert_eq!(Algorithm::parse("des"), None);
    }
}
