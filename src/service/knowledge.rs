//! Instant answers (秒回): the knowledge base staff keep, the answers a
//! consultation is offered as it is filed, the citizen taking one, and the
//! consultations nothing answered.

use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::account::Principal;
use crate::domain::complaint::{Complaint, ComplaintId, ComplaintKind};
use crate::domain::error::DomainError;
use crate::domain::knowledge::{EntryDraft, KnowledgeEntry, UnansweredGroup};
use crate::domain::stats::CaseScope;

/// The knowledge base is read whole for each match; it holds hundreds of
/// entries, not millions.
const MAX_ENTRIES: u32 = 5_000;
/// Unanswered consultations grouped per request.
const MAX_UNANSWERED: u32 = 2_000;

/// An answer offered for a consultation.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantAnswer {
    pub entry: KnowledgeEntry,
    pub score: f64,
}

impl Services {
    pub async fn save_answer(
        &self,
        staff: &Principal,
        id: &str,
        question: &str,
        answer: &str,
        category_code: &str,
    ) -> Result<KnowledgeEntry, DomainError> {
        let id = parse_entry_id(id)?;
        let draft = EntryDraft::parse(question, answer, category_code, |code| {
            self.standard.get(code).is_some()
        })?;
        self.store
            .save_knowledge_entry(id, &draft, staff.account_id, self.clock.now())
            .await?
            .ok_or(DomainError::NotFound("knowledge entry"))
    }

    pub async fn retire_answer(
        &self,
        staff: &Principal,
        id: &str,
    ) -> Result<KnowledgeEntry, DomainError> {
        let id = parse_entry_id(id)?.ok_or(DomainError::NotFound("knowledge entry"))?;
        self.store
            .retire_knowledge_entry(id, staff.account_id, self.clock.now())
            .await?
            .ok_or(DomainError::NotFound("knowledge entry"))
    }

    pub async fn list_answers(
        &self,
        include_retired: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<KnowledgeEntry>, Option<String>), DomainError> {
        let limit = match page_size {
            0 => 50,
            1..=500 => page_size as u32,
            _ => return Err(DomainError::invalid("page_size", "must be 0 to 500")),
        };
        let after = match page_token {
            "" => None,
            token => Some(
                token
                    .parse::<i64>()
                    .map_err(|_| DomainError::invalid("page_token", "not a token we gave"))?,
            ),
        };
        let mut entries = self
            .store
            .knowledge_entries(include_retired, after, limit + 1)
            .await?;
        let next = (entries.len() > limit as usize).then(|| {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.id.to_string()).unwrap_or_default()
        });
        Ok((entries, next))
    }

    /// The answers offered for a consultation: matched and recorded at its
    /// first filing, read back on a retry. Other kinds get none.
    pub async fn instant_answers(
        &self,
        complaint: &Complaint,
    ) -> Result<Vec<InstantAnswer>, DomainError> {
        if complaint.kind != ComplaintKind::Consultation {
            return Ok(Vec::new());
        }
        let entries = self
            .store
            .knowledge_entries(true, None, MAX_ENTRIES)
            .await?;
        let offers = match self.store.recorded_offers(complaint.id).await? {
            Some(offers) => offers,
            None => {
                let live: Vec<KnowledgeEntry> =
                    entries.iter().filter(|e| !e.retired).cloned().collect();
                let result = self.knowledge.match_consultation(
                    &complaint.text,
                    &complaint.category_code,
                    &live,
                );
                self.store
                    .record_match(complaint.id, &result, self.clock.now())
                    .await?
            }
        };
        Ok(offers
            .into_iter()
            .filter_map(|offer| {
                let entry = entries.iter().find(|e| e.id == offer.entry_id)?;
                Some(InstantAnswer {
                    entry: entry.clone(),
                    score: offer.score,
                })
            })
            .collect())
    }

    /// The citizen takes one of the answers offered for their consultation,
    /// which closes it as answered.
    pub async fn accept_instant_answer(
        &self,
        citizen: &Principal,
        id: ComplaintId,
        answer_id: &str,
    ) -> Result<Complaint, DomainError> {
        let answer_id = parse_entry_id(answer_id)?
            .ok_or_else(|| DomainError::invalid("answer_id", "must be set"))?;
        let complaint = self.get_own_complaint(citizen, id).await?;
        let offered = self
            .instant_answers(&complaint)
            .await?
            .into_iter()
            .find(|offer| offer.entry.id == answer_id)
            .ok_or_else(|| {
                DomainError::invalid("answer_id", "this answer was not offered for the complaint")
            })?;
        let answer = offered.entry.answer;
        let closed = self
            .change_own_complaint(citizen, id, |complaint, now| {
                complaint.accept_instant_answer(&answer, citizen.account_id, now)
            })
            .await?;
        self.store.accept_offer(id, answer_id).await?;
        tracing::info!(complaint.id = %id, knowledge.entry = answer_id, "instant answer taken");
        Ok(closed)
    }

    pub async fn unanswered_consultations(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i32,
    ) -> Result<Vec<UnansweredGroup>, DomainError> {
        let (from, to) = CaseScope::period(from, to).map_err(|error| match error {
            DomainError::InvalidInput(violations) => DomainError::InvalidInput(
                violations
                    .into_iter()
                    .map(|mut v| {
                        v.field = v.field.trim_start_matches("scope.").to_owned();
                        v
                    })
                    .collect(),
            ),
            other => other,
        })?;
        let limit = match limit {
            0 => 20,
            1..=100 => limit as usize,
            _ => return Err(DomainError::invalid("limit", "must be 0 to 100")),
        };
        let consultations = self
            .store
            .unanswered_consultations(from, to, MAX_UNANSWERED)
            .await?;
        let mut groups = self.knowledge.group_unanswered(&consultations);
        groups.truncate(limit);
        Ok(groups)
    }
}

/// Entry ids are decimal; empty is `None` (a new entry, or a missing id).
fn parse_entry_id(text: &str) -> Result<Option<i64>, DomainError> {
    match text.trim() {
        "" => Ok(None),
        text => match text.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(DomainError::NotFound("knowledge entry")),
        },
    }
}
