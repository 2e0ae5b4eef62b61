//! The staff side: reading cases in scope, registering matters on a
//! citizen's behalf, and every action of the closed loop.

use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::account::{AccountId, ExternalIdentity, Principal, Role};
use crate::domain::calendar::Deadline;
use crate::domain::case::{Actor, Case, DispatchPlan};
use crate::domain::category::TimeLimit;
use crate::domain::complaint::{
    ComplaintChange, ComplaintEvent, ComplaintId, ComplaintStatus, FilingInput, NewComplaint,
    RequestId,
};
use crate::domain::directory::Directory;
use crate::domain::duplicate::NewReport;
use crate::domain::error::DomainError;
use crate::domain::red_envelope::{NotGrantedReason, RewardEffect};
use crate::store::{DuplicateQuery, Filing, QueueQuery, StaffOutcome};

/// Open complaints compared with each new one, newest first.
const DUPLICATE_CANDIDATES: u32 = 200;

/// One action a staff member takes on a case.
#[derive(Debug, Clone)]
pub enum StaffAction {
    Accept,
    Reject {
        reason: String,
    },
    Answer {
        answer: String,
    },
    Dispatch(DispatchPlan),
    Return {
        reason: String,
    },
    ReportPart {
        summary: String,
    },
    Note {
        note: String,
        visible_to_citizen: bool,
    },
    RequestExtension {
        until: DateTime<Utc>,
        reason: String,
    },
    DecideExtension {
        approve: bool,
    },
    Resolve {
        summary: String,
    },
    Merge {
        into: ComplaintId,
    },
    FollowUp {
        outcome: String,
    },
    HandOver {
        to_unit: String,
        reason: String,
    },
}

/// Filters of a queue listing.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub statuses: Vec<ComplaintStatus>,
    pub overdue_only: bool,
    pub due_within_hours: Option<u32>,
    pub category_code: Option<String>,
}

/// The limit a category gives, or the upper bound for a complaint (15
/// working days under the Guangdong 12345 measures) when it names none.
const FALLBACK_LIMIT: TimeLimit = TimeLimit {
    value: 15,
    unit: crate::domain::category::TimeLimitUnit::WorkingDays,
    inferred: true,
};

const OPEN: [ComplaintStatus; 4] = [
    ComplaintStatus::Received,
    ComplaintStatus::Accepted,
    ComplaintStatus::Dispatched,
    ComplaintStatus::InProgress,
];

impl Services {
    /// The handling deadline of a case in `category`, starting `now`.
    pub fn deadline_for(&self, category: &str, now: DateTime<Utc>) -> Deadline {
        let limit = self
            .standard
            .get(category)
            .and_then(|c| c.time_limit)
            .unwrap_or(FALLBACK_LIMIT);
        self.reference().calendar.deadline(now, limit)
    }

    /// An open complaint that looks like the same matter as `filing`,
    /// filed by `citizen_id`.
    pub async fn probable_duplicate(
        &self,
        filing: &crate::domain::complaint::ValidFiling,
        citizen_id: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Option<ComplaintId>, DomainError> {
        let policy = &self.duplicates;
        let window = chrono::Duration::from_std(policy.window).unwrap_or(chrono::Duration::MAX);
        let query = DuplicateQuery {
            category_code: filing.category_code.clone(),
            citizen_id,
            area: filing
                .location
                .point
                .map(|point| point.surrounding_box(policy.radius_km)),
            since: now
                .checked_sub_signed(window)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            limit: DUPLICATE_CANDIDATES,
        };
        let candidates = self.store.duplicate_candidates(&query).await?;
        let report = NewReport {
            citizen_id,
            text: &filing.text,
            category_code: &filing.category_code,
            location: &filing.location,
        };
        Ok(policy
            .probable_duplicate(&report, &candidates)
            .map(|hint| hint.of))
    }

    /// A case the staff member may see; others are reported as not found.
    pub async fn get_case(&self, staff: &Principal, id: ComplaintId) -> Result<Case, DomainError> {
        let case = self
            .store
            .case(id)
            .await?
            .ok_or(DomainError::NotFound("case"))?;
        if !may_see(staff, &case, &self.reference().directory) {
            return Err(DomainError::NotFound("case"));
        }
        Ok(case)
    }

    /// The whole timeline of a case in scope, internal events included.
    pub async fn case_events(
        &self,
        staff: &Principal,
        id: ComplaintId,
        after: u64,
    ) -> Result<Vec<ComplaintEvent>, DomainError> {
        self.get_case(staff, id).await?;
        Ok(self.store.events_after(id, after, 1000).await?)
    }

    pub async fn list_queue(
        &self,
        staff: &Principal,
        filter: QueueFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Case>, Option<String>), DomainError> {
        let limit = super::complaints::page_limit(page_size)?;
        let offset = decode_offset(page_token)?;
        let now = self.clock.now();
        let query = QueueQuery {
            units: unit_scope(staff, &self.reference().directory),
            statuses: if filter.statuses.is_empty() {
                OPEN.to_vec()
            } else {
                filter.statuses
            },
            overdue_only: filter.overdue_only,
            due_before: filter
                .due_within_hours
                .map(|h| now + chrono::Duration::hours(i64::from(h))),
            category_code: filter.category_code,
            offset,
            limit: limit + 1,
        };
        let mut complaints = self.store.queue(&query).await?;
        let next = (complaints.len() > limit as usize).then(|| encode_offset(offset + limit));
        complaints.truncate(limit as usize);

        Ok((self.store.with_assignments(complaints).await?, next))
    }

    /// Registers a matter a citizen phoned in or brought to a counter. The
    /// citizen is identified by the contact phone; the registering unit
    /// owns the matter (first inquiry).
    pub async fn register_case(
        &self,
        staff: &Principal,
        request_id: &str,
        input: FilingInput,
    ) -> Result<Case, DomainError> {
        let request_id = RequestId::parse("request_id", request_id)
            .map_err(|v| DomainError::InvalidInput(vec![v]))?;
        let unit = staff_unit(staff)?;
        let filing = input.parse_for_staff(&self.standard, &self.service_area)?;
        let Some(phone) = filing.contact_phone.clone() else {
            return Err(DomainError::invalid(
                "complaint.contact_phone",
                "identifies the citizen; it must be set",
            ));
        };

        let now = self.clock.now();
        let identity = ExternalIdentity {
            provider: "phone",
            subject: self.cipher.blind_index(&phone),
            role: Role::Citizen,
            unit_id: None,
            display_name: String::new(),
        };
        let citizen = self.store.upsert_account(&identity, now).await?;
        let mut first_event = NewComplaint::received_event(staff.account_id, now);
        first_event.unit_id = Some(unit.to_owned());
        let duplicate_hint = self.probable_duplicate(&filing, citizen.id, now).await?;
        let replay = self
            .store
            .find_filing(
                citizen.id,
                &RequestId::for_staff(staff.account_id, &request_id),
            )
            .await?;
        if replay.is_none() {
            self.check_photos(staff.account_id, &filing.photo_ids, "complaint.photo_ids")
                .await?;
        }
        let new = NewComplaint {
            citizen_id: citizen.id,
            request_id: RequestId::for_staff(staff.account_id, &request_id),
            fingerprint: filing.fingerprint(),
            kind: filing.kind,
            channel: filing.channel,
            text: filing.text,
            category_code: filing.category_code,
            location: filing.location,
            contact_phone_cipher: Some(self.cipher.encrypt(&phone)?),
            contact_phone_masked: Some(phone.masked()),
            photo_ids: filing.photo_ids,
            photos_uploaded_by: staff.account_id,
            created_at: now,
            owner_unit_id: Some(unit.to_owned()),
            duplicate_hint,
            first_event,
        };
        let id = match self.store.file_complaint(&new).await? {
            Filing::Created { complaint, event } => {
                self.bus.publish(&event);
                complaint.id
            }
            Filing::Existing { complaint, .. } => complaint.id,
            Filing::PhotosUnavailable => return Err(super::evidence::photos_moved()),
        };
        self.store
            .case(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("a registered case vanished").into())
    }

    /// Takes one action on a case: once per request id, and only on the
    /// version the caller saw.
    pub async fn act_on_case(
        &self,
        staff: &Principal,
        request_id: &str,
        id: ComplaintId,
        expected_version: u64,
        action: StaffAction,
    ) -> Result<Case, DomainError> {
        let request_id = RequestId::parse("request_id", request_id)
            .map_err(|v| DomainError::InvalidInput(vec![v]))?;
        if let Some(done) = self
            .store
            .staff_request(staff.account_id, &request_id)
            .await?
        {
            return self.replayed(done, id).await;
        }

        let case = self
            .store
            .case(id)
            .await?
            .ok_or(DomainError::NotFound("case"))?;
        let reference = self.reference();
        if !may_see(staff, &case, &reference.directory) {
            return Err(DomainError::PermissionDenied(
                "this case is not in your unit's scope".to_owned(),
            ));
        }
        if case.complaint.version != expected_version {
            return Err(DomainError::Conflict(format!(
                "the case changed since version {expected_version}; it is at version {}, reload it",
                case.complaint.version
            )));
        }

        let actor = Actor {
            account_id: staff.account_id,
            role: staff.role,
            unit_id: staff_unit(staff)?,
        };
        let change = self
            .decide(&case, &actor, action, &reference.directory)
            .await?;
        match self
            .store
            .apply_staff_change(staff.account_id, &request_id, &change)
            .await?
        {
            StaffOutcome::Applied { events, .. } => {
                for event in &events {
                    self.bus.publish(event);
                }
                tracing::info!(complaint.id = %id, case.status = change.after.status.as_str(), "case changed");
                self.store
                    .case(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("a changed case vanished").into())
            }
            StaffOutcome::Replayed(done) => self.replayed(done, id).await,
            StaffOutcome::Stale => Err(DomainError::Conflict(
                "another change was written first; reload the case".to_owned(),
            )),
        }
    }

    async fn decide(
        &self,
        case: &Case,
        actor: &Actor<'_>,
        action: StaffAction,
        directory: &Directory,
    ) -> Result<ComplaintChange, DomainError> {
        let now = self.clock.now();
        match action {
            StaffAction::Accept => {
                let deadline = self.deadline_for(&case.complaint.category_code, now);
                let urgency = self
                    .standard
                    .get(&case.complaint.category_code)
                    .and_then(|c| c.urgency);
                let mut change = case.accept(actor, deadline, urgency, now)?;
                change.reward = Some(self.red_envelope_offer(&case.complaint).await?);
                Ok(change)
            }
            StaffAction::Reject { reason } => case.reject(actor, &reason, now),
            StaffAction::Answer { answer } => case.answer(actor, &answer, now),
            StaffAction::Dispatch(plan) => case.dispatch(actor, &plan, directory, now),
            StaffAction::Return { reason } => case.return_to_centre(actor, &reason, directory, now),
            StaffAction::ReportPart { summary } => {
                case.report_part(actor, &summary, directory, now)
            }
            StaffAction::Note {
                note,
                visible_to_citizen,
            } => case.add_note(actor, &note, visible_to_citizen, directory, now),
            StaffAction::RequestExtension { until, reason } => {
                case.request_extension(actor, until, &reason, directory, now)
            }
            StaffAction::DecideExtension { approve } => {
                case.decide_extension(actor, approve, directory, now)
            }
            StaffAction::Resolve { summary } => case.resolve(actor, &summary, directory, now),
            StaffAction::Merge { into } => {
                let survivor = self.store.case(into).await?.ok_or_else(|| {
                    DomainError::invalid("into_complaint_id", "no case has this id")
                })?;
                let mut change = case.merge_into(actor, &survivor, now)?;
                change.reward = Some(RewardEffect::Withdraw {
                    reason: NotGrantedReason::Merged.as_str().to_owned(),
                });
                Ok(change)
            }
            StaffAction::FollowUp { outcome } => case.record_follow_up(actor, &outcome, now),
            StaffAction::HandOver { to_unit, reason } => {
                case.hand_over(actor, &to_unit, &reason, directory, now)
            }
        }
    }

    /// The answer to a retried request: the case as it is now. A request
    /// id reused for another case is refused.
    async fn replayed(&self, done: ComplaintId, asked: ComplaintId) -> Result<Case, DomainError> {
        if done != asked {
            return Err(DomainError::invalid(
                "request_id",
                "already used for another case",
            ));
        }
        self.store
            .case(done)
            .await?
            .ok_or(DomainError::NotFound("case"))
    }
}

fn staff_unit(staff: &Principal) -> Result<&str, DomainError> {
    staff
        .unit_id
        .as_deref()
        .ok_or_else(|| DomainError::PermissionDenied("staff actions need a unit".to_owned()))
}

/// District-level roles see every case; unit staff see cases their unit
/// (or, for a supervisor, a unit below theirs) owns or is assigned.
fn may_see(staff: &Principal, case: &Case, directory: &Directory) -> bool {
    let Some(unit) = staff.unit_id.as_deref() else {
        return false;
    };
    match staff.role {
        Role::Dispatcher | Role::DistrictSupervisor | Role::Auditor => true,
        Role::Handler | Role::UnitSupervisor => {
            let reaches = |other: &str| match staff.role {
                Role::Handler => other == unit,
                _ => directory.is_within(other, unit),
            };
            case.assignments.iter().any(|a| reaches(&a.unit_id))
                || case
                    .complaint
                    .handling
                    .owner_unit_id
                    .as_deref()
                    .is_some_and(reaches)
        }
        _ => false,
    }
}

/// The units whose queue a staff member reads; `None` for all cases.
fn unit_scope(staff: &Principal, directory: &Directory) -> Option<Vec<String>> {
    let unit = staff.unit_id.as_deref().unwrap_or_default();
    match staff.role {
        Role::Dispatcher | Role::DistrictSupervisor | Role::Auditor => None,
        Role::UnitSupervisor => Some(
            directory
                .units()
                .iter()
                .filter(|u| directory.is_within(&u.id, unit))
                .map(|u| u.id.clone())
                .collect(),
        ),
        _ => Some(vec![unit.to_owned()]),
    }
}

fn encode_offset(offset: u32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_offset(token: &str) -> Result<u32, DomainError> {
    use base64::Engine;
    if token.is_empty() {
        return Ok(0);
    }
    let invalid = || DomainError::invalid("page_token", "is not a token this server issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    String::from_utf8(bytes)
        .ok()
        .and_then(|text| text.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(invalid)
}
