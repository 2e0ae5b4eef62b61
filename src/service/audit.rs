//! Reading the audit log (audit administrators only, by the access table)
//! and purging what is past its retention.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::account::AccountId;
use crate::domain::audit::{AuditAction, AuditDraft, AuditQuery, AuditRecord, purge_cutoff};
use crate::domain::error::{DomainError, Violations};

/// The filters of a listing as the caller sent them; empty means unset.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_account_id: String,
    pub action: String,
    pub target: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Services {
    /// One page of the log, newest first, and the token of the next.
    pub async fn list_audit_records(
        &self,
        filter: AuditFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<AuditRecord>, Option<String>), DomainError> {
        let mut query = parse_filter(filter, page_token)?;
        let limit = super::complaints::page_limit(page_size)?;
        query.limit = limit + 1;

        let mut records = self.store.audit_records(&query).await?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let next = more
            .then(|| records.last().map(|last| encode_cursor(last.id)))
            .flatten();
        Ok((records, next))
    }

    /// Deletes records older than the configured retention. The database
    /// keeps anything younger than its own six-month floor whatever this
    /// asks, so a clock or configuration error cannot shorten it.
    pub async fn purge_audit_log(&self) -> Result<u64, DomainError> {
        let now = self.clock.now();
        let before = purge_cutoff(now, self.staff_security.audit_retention);
        let audit = AuditDraft::by_system(AuditAction::AuditPurged, "audit_records", now);
        let deleted = self.store.purge_audit_records(before, &audit).await?;
        if deleted > 0 {
            tracing::info!(
                audit.deleted = deleted,
                "audit records past retention purged"
            );
        }
        Ok(deleted)
    }
}

fn parse_filter(filter: AuditFilter, page_token: &str) -> Result<AuditQuery, DomainError> {
    let mut violations = Violations::default();
    let actor_id = match filter.actor_account_id.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(id) if id > 0 => Some(AccountId(id)),
            _ => {
                violations.push("actor_account_id", "must be an account id");
                None
            }
        },
    };
    let action = match filter.action.trim() {
        "" => None,
        text => {
            let parsed = AuditAction::parse(text);
            if parsed.is_none() {
                violations.push("action", "is not an action the log records");
            }
            parsed
        }
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        violations.push("until", "must be after since");
    }
    let before_id = decode_cursor(page_token);
    if before_id.is_err() {
        violations.push("page_token", "is not a token this server issued");
    }
    violations.into_result()?;

    let target = filter.target.trim();
    Ok(AuditQuery {
        actor_id,
        action,
        target: (!target.is_empty()).then(|| target.to_owned()),
        since: filter.since,
        until: filter.until,
        before_id: before_id.unwrap_or_default(),
        limit: 0,
    })
}

fn encode_cursor(id: i64) -> String {
    B64.encode(format!("audit-before:{id}"))
}

fn decode_cursor(token: &str) -> Result<Option<i64>, ()> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = B64.decode(token).map_err(|_| ())?;
    let text = String::from_utf8(bytes).map_err(|_| ())?;
    let id = text.strip_prefix("audit-before:").ok_or(())?;
    id.parse().map(Some).map_err(|_| ())
}
