//! Secrets: signed session tokens, refresh tokens, the encryption of
//! personal data and sign-in secrets at rest, staff passwords and TOTP.

pub mod cipher;
pub mod field;
pub mod keys;
pub mod otp;
pub mod password;
pub mod sealed;
pub mod secret;
pub mod token;
pub mod totp;

pub use cipher::PhoneCipher;
pub use field::{Algorithm, FieldCipher, KeyTag, VersionedCipher};
pub use keys::Keys;
pub use sealed::SecretCipher;
pub use secret::Secret;
pub use token::{TokenError, TokenSigner};
