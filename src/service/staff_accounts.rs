//! Staff accounts with passwords: created and maintained by system
//! administrators, each member's own password and second factor, and the
//! first administrator, made from the console before anyone can sign in.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::account::{AccountId, Principal, Role};
use crate::domain::audit::{AuditAction, AuditDraft, account_target};
use crate::domain::error::{DomainError, Violations};
use crate::domain::staff::{
    LockoutPolicy, Password, SecondFactor, StaffCredential, Username, requires_second_factor,
};
use crate::security::SecretCipher;
use crate::security::password;
use crate::security::totp::{self, TotpSecret};
use crate::store::Store;
use crate::store::staff::{CredentialChange, NewStaffAccount, StaffCreation};

/// The unit the first administrator belongs to.
const CENTRE: &str = "centre";

/// Sign-in and audit settings, and the key for second-factor secrets.
#[derive(Debug)]
pub struct StaffSecurity {
    pub lockout: LockoutPolicy,
    /// How long audit records are kept; never less than the floor.
    pub audit_retention: chrono::Duration,
    pub secrets: SecretCipher,
}

/// A TOTP secret for its owner's authenticator, shown once.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    pub secret: TotpSecret,
    pub otpauth_uri: String,
}

impl TotpEnrollment {
    fn new(username: &str) -> TotpEnrollment {
        let secret = TotpSecret::generate();
        TotpEnrollment {
            otpauth_uri: secret.otpauth_uri(username),
            secret,
        }
    }
}

/// What an account's owner is handed, once: nothing here is stored in
/// the clear.
#[derive(Debug, Clone)]
pub struct IssuedCredentials {
    pub credential: StaffCredential,
    pub initial_password: Password,
    pub totp: Option<TotpEnrollment>,
}

/// An account a system administrator asks for.
#[derive(Debug, Clone)]
pub struct NewStaffMember {
    pub username: String,
    pub display_name: String,
    pub role: Option<Role>,
    pub unit_id: String,
}

/// A change of an account's state that needs no new secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Unlock,
    Disable,
    Enable,
}

/// Runs CPU-heavy work (Argon2) off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DomainError> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .context("Failed to run a password computation")?)
}

async fn hash_password(password: &Password) -> Result<String, DomainError> {
    let password = password.clone();
    Ok(blocking(move || password::hash(&password)).await??)
}

/// A fresh initial password, and for roles that need one an active
/// second factor, ready to store.
async fn initial_credentials(
    username: &str,
    role: Role,
    secrets: &SecretCipher,
) -> Result<(Password, String, Option<(TotpEnrollment, String)>), DomainError> {
    let password = password::initial_password();
    let hash = hash_password(&password).await?;
    let factor = if requires_second_factor(role) {
        let enrollment = TotpEnrollment::new(username);
        let sealed = secrets.seal_totp(&enrollment.secret)?;
        Some((enrollment, sealed))
    } else {
        None
    };
    Ok((password, hash, factor))
}

/// Creates the first system administrator directly in the store, unless an
/// enabled one with a password exists. Run from the console, so the record
/// names the system as the actor.
pub async fn bootstrap_admin(
    store: &dyn Store,
    secrets: &SecretCipher,
    now: DateTime<Utc>,
    username: &str,
    display_name: &str,
) -> Result<IssuedCredentials, DomainError> {
    let username =
        Username::parse("username", username).map_err(|v| DomainError::InvalidInput(vec![v]))?;
    let (initial_password, password_hash, factor) =
        initial_credentials(username.as_str(), Role::SystemAdmin, secrets).await?;
    let (totp, factor_cipher) = factor.unzip();
    let new = NewStaffAccount {
        username: username.clone(),
        role: Role::SystemAdmin,
        unit_id: CENTRE.to_owned(),
        display_name: display_name.trim().to_owned(),
        password_hash,
        factor_cipher,
    };
    let audit = AuditDraft::by_system(AuditAction::AdminBootstrapped, "", now)
        .detail(format!("username {}", username.as_str()));

    let account = match store.create_staff_account(&new, true, &audit).await? {
        StaffCreation::Created(account) => account,
        StaffCreation::AdminExists => {
            return Err(DomainError::FailedPrecondition(
                "a system administrator already exists; it can create further accounts".to_owned(),
            ));
        }
        StaffCreation::UsernameTaken => {
            return Err(DomainError::invalid("username", "is already taken"));
        }
    };
    let credential = store
        .staff_credential_of(account.id)
        .await?
        .context("A new administrator vanished")?;
    Ok(IssuedCredentials {
        credential,
        initial_password,
        totp,
    })
}

impl Services {
    pub async fn create_staff_account(
        &self,
        admin: &Principal,
        request: NewStaffMember,
    ) -> Result<IssuedCredentials, DomainError> {
        let (username, role, unit_id) = self.parse_new_staff(&request)?;
        let secrets = &self.staff_security.secrets;
        let (initial_password, password_hash, factor) =
            initial_credentials(username.as_str(), role, secrets).await?;
        let (totp, factor_cipher) = factor.unzip();

        let new = NewStaffAccount {
            username: username.clone(),
            role,
            unit_id: unit_id.clone(),
            display_name: request.display_name.trim().to_owned(),
            password_hash,
            factor_cipher,
        };
        let audit =
            AuditDraft::by(admin, AuditAction::StaffCreated, "", self.clock.now()).detail(format!(
                "username {}, role {}, unit {unit_id}",
                username.as_str(),
                role.as_str()
            ));
        let account = match self.store.create_staff_account(&new, false, &audit).await? {
            StaffCreation::Created(account) => account,
            StaffCreation::UsernameTaken | StaffCreation::AdminExists => {
                return Err(DomainError::invalid("username", "is already taken"));
            }
        };

        tracing::info!(
            account.id = %account.id,
            account.role = role.as_str(),
            "staff account created"
        );
        Ok(IssuedCredentials {
            credential: self.staff_credential(account.id).await?,
            initial_password,
            totp,
        })
    }

    fn parse_new_staff(
        &self,
        request: &NewStaffMember,
    ) -> Result<(Username, Role, String), DomainError> {
        let mut violations = Violations::default();
        let username = violations.check(Username::parse("username", &request.username));
        if request.display_name.trim().chars().count() > 64 {
            violations.push("display_name", "must be at most 64 characters");
        }
        match request.role {
            None => violations.push("role", "must be set"),
            Some(Role::Citizen) => violations.push("role", "must be a staff role"),
            Some(_) => {}
        }
        let unit_id = request.unit_id.trim();
        if self.reference().directory.get(unit_id).is_none() {
            violations.push("unit_id", "no unit has this id");
        }
        violations.into_result()?;

        let (Some(username), Some(role)) = (username, request.role) else {
            return Err(anyhow::anyhow!("a checked staff request lost a field").into());
        };
        Ok((username, role, unit_id.to_owned()))
    }

    /// Sets a new initial password (and optionally a new second factor),
    /// lifts any lock and ends the account's sessions.
    ///
    /// TODO(identity): a system administrator who resets a security or
    /// audit administrator's password is shown it, and could sign in as
    /// them; resets of those roles should need a second administrator, or
    /// deliver the password to its owner directly.
    pub async fn reset_password(
        &self,
        admin: &Principal,
        id: AccountId,
        new_factor: bool,
    ) -> Result<IssuedCredentials, DomainError> {
        let current = self.staff_credential(id).await?;
        let initial_password = password::initial_password();
        let password_hash = hash_password(&initial_password).await?;
        let totp = new_factor.then(|| TotpEnrollment::new(&current.username));
        let new_factor_cipher = totp
            .as_ref()
            .map(|t| self.staff_security.secrets.seal_totp(&t.secret))
            .transpose()?;

        let change = CredentialChange::ResetPassword {
            password_hash,
            new_factor_cipher,
        };
        let detail = if new_factor {
            "with a new second factor"
        } else {
            ""
        };
        let audit = AuditDraft::by(
            admin,
            AuditAction::PasswordReset,
            account_target(id),
            self.clock.now(),
        )
        .detail(detail);
        self.change_credential(id, &change, &audit).await?;

        Ok(IssuedCredentials {
            credential: self.staff_credential(id).await?,
            initial_password,
            totp,
        })
    }

    pub async fn set_account_state(
        &self,
        admin: &Principal,
        id: AccountId,
        state: AccountState,
    ) -> Result<StaffCredential, DomainError> {
        if state == AccountState::Disable && admin.account_id == id {
            return Err(DomainError::FailedPrecondition(
                "you cannot disable your own account".to_owned(),
            ));
        }
        let (change, action) = match state {
            AccountState::Unlock => (CredentialChange::Unlock, AuditAction::StaffUnlocked),
            AccountState::Disable => (CredentialChange::Disable, AuditAction::StaffDisabled),
            AccountState::Enable => (CredentialChange::Enable, AuditAction::StaffEnabled),
        };
        let audit = AuditDraft::by(admin, action, account_target(id), self.clock.now());
        // Refresh tokens end here; access tokens already issued stay valid
        // until they expire, as after a sign-out (see `Services::sign_out`).
        self.change_credential(id, &change, &audit).await?;
        self.staff_credential(id).await
    }

    pub async fn staff_credentials(
        &self,
        unit_id: Option<&str>,
    ) -> Result<Vec<StaffCredential>, DomainError> {
        Ok(self.store.staff_credentials(unit_id).await?)
    }

    /// Sets the caller's own password; the current one must be given, and
    /// a wrong one counts towards the lock-out like a failed sign-in.
    pub async fn change_password(
        &self,
        me: &Principal,
        old_password: String,
        new_password: String,
    ) -> Result<(), DomainError> {
        let mut violations = Violations::default();
        if old_password.is_empty() {
            violations.push("old_password", "must be set");
        }
        let credential = self.store.staff_credential_of(me.account_id).await?;
        let username = credential.as_ref().map_or("", |c| c.username.as_str());
        let new_password =
            violations.check(Password::new_for("new_password", new_password, username));
        if new_password
            .as_ref()
            .is_some_and(|p| p.expose() == old_password)
        {
            violations.push("new_password", "must differ from the current password");
        }
        violations.into_result()?;
        let credential = own(credential)?;
        let now = self.clock.now();
        if !credential.admits_attempt(now) {
            return Err(DomainError::FailedPrecondition(
                "the account is locked or disabled".to_owned(),
            ));
        }

        let old_password = Password::presented(old_password);
        let stored = credential.password_hash.clone();
        if !blocking(move || password::verify(&old_password, &stored)).await? {
            self.count_sign_in_failure(&credential, now).await?;
            return Err(DomainError::invalid(
                "old_password",
                "is not your current password",
            ));
        }
        let new_password = new_password.context("a checked password went missing")?;
        let change = CredentialChange::ChangePassword {
            password_hash: hash_password(&new_password).await?,
        };
        let audit = AuditDraft::by(
            me,
            AuditAction::PasswordChanged,
            account_target(me.account_id),
            now,
        );
        self.change_credential(me.account_id, &change, &audit).await
    }

    /// Starts enrolling an authenticator: a new pending secret replaces any
    /// earlier pending one. Refused while a factor is active.
    pub async fn enroll_totp(&self, me: &Principal) -> Result<TotpEnrollment, DomainError> {
        let credential = own(self.store.staff_credential_of(me.account_id).await?)?;
        if credential.factor.is_active() {
            return Err(DomainError::FailedPrecondition(
                "a second factor is already active; a system administrator can reset it".to_owned(),
            ));
        }
        let enrollment = TotpEnrollment::new(&credential.username);
        let change = CredentialChange::EnrollFactor {
            secret_cipher: self.staff_security.secrets.seal_totp(&enrollment.secret)?,
        };
        let audit = AuditDraft::by(
            me,
            AuditAction::FactorEnrolled,
            account_target(me.account_id),
            self.clock.now(),
        )
        .detail("pending confirmation");
        self.change_credential(me.account_id, &change, &audit)
            .await
            .map_err(|e| unless_missing(e, "a second factor became active meanwhile"))?;
        Ok(enrollment)
    }

    /// Activates the pending secret once the caller shows a code from it.
    pub async fn confirm_totp(&self, me: &Principal, code: &str) -> Result<(), DomainError> {
        if code.trim().is_empty() {
            return Err(DomainError::invalid("code", "must be set"));
        }
        let credential = own(self.store.staff_credential_of(me.account_id).await?)?;
        let SecondFactor::Pending { secret_cipher } = credential.factor else {
            return Err(DomainError::FailedPrecondition(
                "no second factor is waiting for confirmation; call EnrollTotp first".to_owned(),
            ));
        };
        let secret = self.staff_security.secrets.open_totp(&secret_cipher)?;
        let now = self.clock.now();
        let Some(step) = totp::matching_step(&secret, code, now, None) else {
            return Err(DomainError::invalid(
                "code",
                "does not match the enrolled secret at this time",
            ));
        };

        let change = CredentialChange::ConfirmFactor {
            secret_cipher,
            step,
        };
        let audit = AuditDraft::by(
            me,
            AuditAction::FactorEnrolled,
            account_target(me.account_id),
            now,
        )
        .detail("confirmed");
        self.change_credential(me.account_id, &change, &audit)
            .await
            .map_err(|e| unless_missing(e, "the enrollment changed meanwhile; enroll again"))
    }

    /// Applies a change with its audit record and ends the sessions it
    /// revoked on every replica.
    async fn change_credential(
        &self,
        id: AccountId,
        change: &CredentialChange,
        audit: &AuditDraft,
    ) -> Result<(), DomainError> {
        let families = self
            .store
            .change_staff_credential(id, change, audit)
            .await?
            .ok_or(DomainError::NotFound("staff account"))?;
        for family in &families {
            self.bus.publish_revocation(family);
        }
        tracing::info!(
            account.id = %id,
            audit.action = audit.action.as_str(),
            "staff credential changed"
        );
        Ok(())
    }

    async fn staff_credential(&self, id: AccountId) -> Result<StaffCredential, DomainError> {
        self.store
            .staff_credential_of(id)
            .await?
            .ok_or(DomainError::NotFound("staff account"))
    }

    /// Counts a failed attempt against the account; the one that reaches
    /// the limit locks it and is audit-logged.
    pub(super) async fn count_sign_in_failure(
        &self,
        credential: &StaffCredential,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let policy = self.staff_security.lockout;
        let lockout = AuditDraft::by_system(
            AuditAction::StaffLockedOut,
            account_target(credential.account.id),
            now,
        )
        .detail(format!(
            "{} failures in a row; locked for {} minutes",
            policy.max_failures,
            policy.lock_for.num_minutes()
        ));
        let locked = self
            .store
            .record_sign_in_failure(credential.account.id, &policy, &lockout)
            .await?;
        if locked {
            tracing::warn!(account.id = %credential.account.id, "staff account locked out");
        }
        Ok(())
    }
}

/// The caller's own credential; accounts of the development provider have
/// none.
fn own(credential: Option<StaffCredential>) -> Result<StaffCredential, DomainError> {
    credential.ok_or_else(|| {
        DomainError::FailedPrecondition("this account signs in without a password".to_owned())
    })
}

/// A guarded change that found nothing to change: the credential moved on
/// between reading and writing.
fn unless_missing(error: DomainError, reason: &str) -> DomainError {
    match error {
        DomainError::NotFound(_) => DomainError::FailedPrecondition(reason.to_owned()),
        other => other,
    }
}
