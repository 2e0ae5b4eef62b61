//! Staff who sign in with a username and password: what a username and a
//! password may be, when repeated failures lock an account, and which roles
//! need a second factor.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use super::account::{Account, Role};
use super::error::FieldViolation;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A staff member's sign-in name: 3 to 32 characters, lowercase letters,
/// digits, '.', '_' or '-', starting with a letter. Kept plain ASCII so
/// that it reads the same in every authenticator app and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(field: &str, raw: &str) -> Result<Username, FieldViolation> {
        let name = raw.trim();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        let valid = (3..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(allowed);
        if !valid {
            return Err(FieldViolation::new(
                field,
                "must be 3 to 32 lowercase letters, digits, '.', '_' or '-', \
                 starting with a letter",
            ));
        }
        Ok(Username(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password in memory. `Debug` hides it, so that no stray `{:?}` can
/// write it to a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// A password as presented at sign-in: checked against the stored hash,
    /// never against the policy (which may have changed since it was set).
    pub fn presented(raw: String) -> Password {
        Password(raw)
    }

    /// A new password, held to the policy: 12 to 128 characters, at least
    /// three of lowercase, uppercase, digits and other characters, and not
    /// containing the username.
    pub fn new_for(field: &str, raw: String, username: &str) -> Result<Password, FieldViolation> {
        let chars = raw.chars().count();
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
            return Err(FieldViolation::new(
                field,
                format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        let classes = [
            raw.chars().any(|c| c.is_lowercase()),
            raw.chars().any(|c| c.is_uppercase()),
            raw.chars().any(|c| c.is_ascii_digit()),
            raw.chars().any(|c| !c.is_alphanumeric()),
        ];
        if classes.iter().filter(|present| **present).count() < 3 {
            return Err(FieldViolation::new(
                field,
                "must mix at least three of lowercase, uppercase, digits and symbols",
            ));
        }
        if !username.is_empty() && raw.to_lowercase().contains(&username.to_lowercase()) {
            return Err(FieldViolation::new(field, "must not contain the username"));
        }
        Ok(Password(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How many failures in a row lock an account, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            lock_for: Duration::minutes(15),
        }
    }
}

/// The administrator roles sign in only with a second factor: they can
/// change who may do what, and read the audit log.
pub fn requires_second_factor(role: Role) -> bool {
    matches!(
        role,
        Role::SystemAdmin | Role::SecurityAdmin | Role::AuditAdmin
    )
}

/// A TOTP secret as stored: encrypted, and pending until its owner has
/// shown one code from it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecondFactor {
    None,
    Pending {
        secret_cipher: String,
    },
    Active {
        secret_cipher: String,
        /// The time step of the last accepted code.
        last_step: Option<u64>,
    },
}

impl SecondFactor {
    pub fn is_active(&self) -> bool {
        matches!(self, SecondFactor::Active { .. })
    }
}

/// A staff account with its password credential.
#[derive(Clone)]
pub struct StaffCredential {
    pub account: Account,
    pub username: String,
    /// Argon2id, as a PHC string.
    pub password_hash: String,
    /// The password is still the one an administrator was shown.
    pub password_is_initial: bool,
    pub failed_attempts: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub factor: SecondFactor,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl StaffCredential {
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// Whether a password may be tried at all.
    pub fn admits_attempt(&self, now: DateTime<Utc>) -> bool {
        !self.disabled && !self.is_locked(now)
    }

    /// Which factor a sign-in must check.
    pub fn factor_check(&self) -> FactorCheck<'_> {
        match &self.factor {
            SecondFactor::Active {
                secret_cipher,
                last_step,
            } => FactorCheck::Code {
                secret_cipher,
                last_step: *last_step,
            },
            _ if requires_second_factor(self.account.role) => FactorCheck::Missing,
            _ => FactorCheck::NotEnrolled,
        }
    }
}

/// What the second-factor step of a sign-in does.
#[derive(Debug, PartialEq, Eq)]
pub enum FactorCheck<'a> {
    /// A code from this secret is needed, of a later step than `last_step`.
    Code {
        secret_cipher: &'a str,
        last_step: Option<u64>,
    },
    /// The role needs a factor and none is active: the sign-in fails.
    Missing,
    /// Optional for this role, and not enrolled.
    NotEnrolled,
}

impl fmt::Debug for StaffCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffCredential")
            .field("account", &self.account)
            .field("username", &self.username)
            .field("failed_attempts", &self.failed_attempts)
            .field("locked_until", &self.locked_until)
            .field("disabled", &self.disabled)
            .field("factor_active", &self.factor.is_active())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::AccountId;

    #[test]
    fn usernames_are_plain_lowercase_names() {
        assert_eq!(
            Username::parse("u", " zhang.wei ").unwrap().as_str(),
            "zhang.wei"
        );
        for bad in [
            "",
            "ab",
            "Zhang",
            "1admin",
            "张伟",
            "a b c",
            &"a".repeat(33),
        ] {
            assert!(Username::parse("u", bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_password_policy_wants_length_mix_and_no_username() {
        let ok = |raw: &str| Password::new_for("p", raw.to_owned(), "zhang.wei").is_ok();
        assert!(ok("Correct-horse-42"));
        assert!(ok("correct horse 42"));
        assert!(!ok("Short-1a"));
        assert!(!ok("alllowercaseletters"));
        assert!(!ok("lowercase-and-symbols"));
        assert!(!ok("My-ZHANG.WEI-pass-1"));
        assert!(!ok(&"Aa1-".repeat(33)));
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let password = Password::presented("Secret-Value-9".to_owned());
        assert!(!format!("{password:?}").contains("Secret"));
    }

    fn credential(role: Role, factor: SecondFactor) -> StaffCredential {
        StaffCredential {
            account: Account {
                id: AccountId(1),
                role,
                unit_id: Some("centre".to_owned()),
                display_name: String::new(),
            },
            username: "someone".to_owned(),
            password_hash: String::new(),
            password_is_initial: true,
            failed_attempts: 0,
            locked_until: None,
            disabled: false,
            factor,
            last_sign_in_at: None,
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn administrators_without_an_active_factor_cannot_pass() {
        let pending = SecondFactor::Pending {
            secret_cipher: "v1:x".to_owned(),
        };
        for role in [Role::SystemAdmin, Role::SecurityAdmin, Role::AuditAdmin] {
            assert_eq!(
                credential(role, pending.clone()).factor_check(),
                FactorCheck::Missing
            );
        }
        assert_eq!(
            credential(Role::Handler, pending).factor_check(),
            FactorCheck::NotEnrolled
        );
        let active = SecondFactor::Active {
            secret_cipher: "v1:x".to_owned(),
            last_step: Some(7),
        };
        assert_eq!(
            credential(Role::Handler, active).factor_check(),
            FactorCheck::Code {
                secret_cipher: "v1:x",
                last_step: Some(7)
            }
        );
    }

    #[test]
    fn a_lock_ends_at_its_time() {
        let now = DateTime::UNIX_EPOCH + Duration::days(1);
        let mut locked = credential(Role::Handler, SecondFactor::None);
        locked.locked_until = Some(now + Duration::minutes(15));
        assert!(!locked.admits_attempt(now));
        assert!(locked.admits_attempt(now + Duration::minutes(15)));
        locked.disabled = true;
        assert!(!locked.admits_attempt(now + Duration::days(1)));
    }
}
