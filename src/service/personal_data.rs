//! Citizens' personal data: key rotation in the background, a citizen's
//! export and deletion of their own account, and the retention purge.
//!
//! Deleting an account keeps the complaints: a case record is public
//! administration and is kept by its own rules. What identifies the person
//! goes: their phone, WeChat identities, name, sessions and pending SMS
//! code, the contact phone on each complaint, every photo they uploaded
//! (a photo can show faces, number plates and homes), and the sign-in
//! subject (provider and subject become `deleted`), so the same WeChat
//! user or phone signing in again gets a new, empty account. The complaint
//! text and address stay, since handling and statistics need them.
//!
//! TODO(privacy): names or numbers a citizen typed into a complaint's text
//! or rating comment stay with it; finding them would need a reviewed
//! redaction step by staff.
//! TODO(privacy): exports are logged but not audit-logged; a stolen
//! session could export quietly. An audit action for exports would let the
//! security administrator spot repeated ones.
//! TODO(security): a staff member who enrols a TOTP secret while the
//! re-encryption rewrites it must enrol again: confirming compares the
//! stored ciphertext, which the rewrite changed.
//! Red envelopes and their payout bills stay for the accounts; they hold no
//! openid (the payee is looked up when a claim starts), so deletion leaves
//! nothing there to detach.
//! TODO(rewards): a deleted account's unclaimed envelopes stay owed until
//! their claim period ends and only then go back to the budget; deletion
//! could cancel them at once.

use std::collections::HashMap;

use super::Services;
use crate::domain::account::{AccountId, Principal};
use crate::domain::audit::{AuditAction, AuditDraft, account_target};
use crate::domain::complaint::ComplaintEvent;
use crate::domain::error::DomainError;
use crate::domain::personal_data::{
    CitizenExport, ExportedComplaint, ExportedWeChat, PurgeReport, RetentionPolicy,
    check_deletion_confirmation,
};
use crate::security::KeyTag;
use crate::store::CitizenQuery;
use crate::store::personal_data::{CipherCensus, CipherColumn, CitizenDeletion};

/// Key rotation and retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalDataPolicy {
    pub retention: RetentionPolicy,
    /// Values re-encrypted per transaction.
    pub reencryption_batch: u32,
    /// Batches per column in one run of the background job, so that one
    /// supervision tick stays short; the next tick resumes.
    pub reencryption_batches_per_run: u32,
}

impl Default for PersonalDataPolicy {
    fn default() -> PersonalDataPolicy {
        PersonalDataPolicy {
            retention: RetentionPolicy::default(),
            reencryption_batch: 200,
            reencryption_batches_per_run: 50,
        }
    }
}

/// How far re-encryption under the current key has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptionProgress {
    pub current: KeyTag,
    pub columns: Vec<(CipherColumn, CipherCensus)>,
}

impl ReencryptionProgress {
    pub fn complete(&self) -> bool {
        self.columns.iter().all(|(_, c)| c.current == c.total)
    }
}

const PAGE: u32 = 100;

impl Services {
    /// Re-encrypts, column by column, the stored values not under the
    /// current algorithm and key, in batches of the configured size and at
    /// most the configured number of batches per column; returns how many
    /// changed. The stale values themselves are the job's state, so a run
    /// that stops resumes where it left, and runs on several replicas share
    /// the work.
    pub async fn reencrypt_stale_values(&self) -> Result<u64, DomainError> {
        let mut changed = 0;
        for column in CipherColumn::ALL {
            changed += self.reencrypt_column(column).await?;
        }
        if changed > 0 {
            tracing::info!(
                key.current = %self.cipher.current(),
                reencrypted = changed,
                "stored personal data re-encrypted under the current key"
            );
        }
        Ok(changed)
    }

    async fn reencrypt_column(&self, column: CipherColumn) -> Result<u64, DomainError> {
        let current = self.cipher.current();
        let prefix = current.prefix();
        let reseal = |stored: &str| match column {
            CipherColumn::StaffTotpSecret => self.staff_security.secrets.reseal(stored),
            _ => self.cipher.reseal(stored),
        };
        let policy = &self.personal_data;

        let mut changed = 0;
        for _ in 0..policy.reencryption_batches_per_run {
            let audit = AuditDraft::by_system(
                AuditAction::DataReencrypted,
                column.name(),
                self.clock.now(),
            )
            .because(format!("key rotation to {current}"));
            let batch = self
                .store
                .reencrypt_batch(column, &prefix, policy.reencryption_batch, &reseal, &audit)
                .await?;
            changed += batch;
            if batch < u64::from(policy.reencryption_batch) {
                break;
            }
        }
        Ok(changed)
    }

    pub async fn reencryption_progress(&self) -> Result<ReencryptionProgress, DomainError> {
        let current = self.cipher.current();
        let mut columns = Vec::new();
        for column in CipherColumn::ALL {
            let census = self.store.cipher_census(column, &current.prefix()).await?;
            columns.push((column, census));
        }
        Ok(ReencryptionProgress { current, columns })
    }

    /// Everything held about the calling citizen, unmasked: it is theirs.
    pub async fn export_my_data(&self, citizen: &Principal) -> Result<CitizenExport, DomainError> {
        let id = citizen.account_id;
        let record = self
            .store
            .citizen(id)
            .await?
            .ok_or(DomainError::NotFound("citizen"))?;
        let phone = record
            .phone_cipher
            .as_deref()
            .map(|cipher| self.cipher.decrypt(cipher))
            .transpose()?;
        let wechat = self.store.linked_wechat(id).await?;

        let export = CitizenExport {
            account_id: id,
            display_name: record.account.display_name,
            phone,
            wechat: wechat
                .into_iter()
                .map(|w| ExportedWeChat {
                    app_id: w.app_id,
                    openid: w.openid,
                    unionid: w.unionid,
                    linked_at: w.linked_at,
                })
                .collect(),
            privacy_notice: record.privacy_notice.map(|n| (n.version, n.accepted_at)),
            complaints: self.exported_complaints(id).await?,
            exported_at: self.clock.now(),
        };
        tracing::info!(account.id = %id, complaints = export.complaints.len(), "data exported");
        Ok(export)
    }

    async fn exported_complaints(
        &self,
        citizen: AccountId,
    ) -> Result<Vec<ExportedComplaint>, DomainError> {
        let mut contacts: HashMap<_, _> = self
            .store
            .contact_ciphers(citizen)
            .await?
            .into_iter()
            .collect();
        let mut exported = Vec::new();
        let mut before = None;
        loop {
            let query = CitizenQuery {
                citizen_id: citizen,
                status: None,
                before,
                limit: PAGE,
            };
            let page = self.store.citizen_complaints(&query).await?;
            for complaint in &page {
                let contact_phone = contacts
                    .remove(&complaint.id)
                    .map(|cipher| self.cipher.decrypt(&cipher))
                    .transpose()?;
                exported.push(ExportedComplaint {
                    timeline: self.visible_timeline(complaint.id).await?,
                    complaint: complaint.clone(),
                    contact_phone,
                });
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => before = Some(last.id),
                _ => return Ok(exported),
            }
        }
    }

    async fn visible_timeline(
        &self,
        id: crate::domain::complaint::ComplaintId,
    ) -> Result<Vec<ComplaintEvent>, DomainError> {
        let mut events: Vec<ComplaintEvent> = Vec::new();
        loop {
            let after = events.last().map_or(0, |event| event.sequence);
            let page = self.store.events_after(id, after, 500).await?;
            let done = page.len() < 500;
            events.extend(page);
            if done {
                break;
            }
        }
        events.retain(|event| event.visible_to_citizen);
        Ok(events)
    }

    /// Deletes the calling citizen's account (see the module's comment for
    /// what goes and what stays) and ends its sessions on every replica.
    pub async fn delete_my_account(
        &self,
        citizen: &Principal,
        confirmation: &str,
    ) -> Result<CitizenDeletion, DomainError> {
        check_deletion_confirmation("confirmation", confirmation)
            .map_err(|v| DomainError::InvalidInput(vec![v]))?;
        let now = self.clock.now();
        let target = account_target(citizen.account_id);
        let audit = AuditDraft::by(citizen, AuditAction::AccountDeleted, target, now);

        // Retired first, so they stop being shown at once; the purge below
        // deletes their files (and the next one, should this one stop).
        let photos = self.store.retire_uploads_of(citizen.account_id).await?;
        let deletion = self
            .store
            .delete_citizen(citizen.account_id, now, &audit)
            .await?
            .ok_or(DomainError::NotFound("citizen"))?;
        if let Err(error) = self.purge_uploads().await {
            tracing::error!(error = %format!("{error:#}"), "upload purge after a deletion failed");
        }
        for family in &deletion.revoked_families {
            self.bus.publish_revocation(family);
        }
        tracing::info!(
            account.id = %citizen.account_id,
            complaints.kept = deletion.complaints_kept,
            photos.deleted = photos,
            "citizen account deleted"
        );
        Ok(deletion)
    }

    /// Removes sessions, SMS codes and closed complaints' contact phones
    /// past their retention (the supervision loop's daily step).
    pub async fn purge_personal_data(&self) -> Result<PurgeReport, DomainError> {
        let now = self.clock.now();
        let cutoffs = self.personal_data.retention.cutoffs(now);
        let audit = AuditDraft::by_system(AuditAction::RetentionPurged, "personal_data", now);
        let report = self.store.purge_personal_data(&cutoffs, &audit).await?;
        if !report.is_empty() {
            tracing::info!(
                purged.sessions = report.sessions,
                purged.sms_codes = report.sms_codes,
                purged.complaint_contacts = report.complaint_contacts,
                "personal data past retention purged"
            );
        }
        Ok(report)
    }
}
