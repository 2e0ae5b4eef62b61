//! Secrets: signed session tokens, refresh tokens and the encryption of
//! personal data at rest.

pub mod cipher;
pub mod keys;
pub mod otp;
pub mod secret;
pub mod token;

pub use cipher::PhoneCipher;
pub use keys::Keys;
pub use secret::Secret;
pub use token::{TokenError, TokenSigner};
