//! Complaints, their timeline, and the rules of the citizen's side of the
//! life cycle: filing, withdrawal, rating.

use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::account::AccountId;
use super::calendar::Deadline;
use super::case::Assignment;
use super::category::{CategoryStandard, Urgency};
use super::error::{DomainError, FieldViolation, Violations};
use super::geo::{Datum, GeoPoint, ServiceArea};
use super::phone::PhoneNumber;
use super::time::local_date;

pub const TEXT_MIN_CHARS: usize = 5;
pub const TEXT_MAX_CHARS: usize = 2000;
pub const ADDRESS_MAX_CHARS: usize = 200;
pub const REASON_MAX_CHARS: usize = 500;
pub const MAX_PHOTOS: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComplaintId(pub i64);

impl fmt::Display for ComplaintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ComplaintId {
    /// Parses the decimal id clients receive. Anything else names no
    /// complaint, so it is reported as not found rather than as bad input.
    pub fn parse(text: &str) -> Result<ComplaintId, DomainError> {
        match text.parse::<i64>() {
            Ok(id) if id > 0 => Ok(ComplaintId(id)),
            _ => Err(DomainError::NotFound("complaint")),
        }
    }
}

/// Declares a closed set of values stored by name.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}
pub(crate) use stored_enum;

stored_enum!(ComplaintKind {
    Complaint => "complaint",
    Suggestion => "suggestion",
    Consultation => "consultation",
});

stored_enum!(
    /// How a matter reached the district.
    Channel {
        MiniProgram => "mini_program",
        App => "app",
        Hotline => "hotline",
        WalkIn => "walk_in",
        StaffEntered => "staff_entered",
    }
);

impl Channel {
    /// The channels a citizen files through themselves; the rest are staff
    /// registering a matter on a citizen's behalf.
    pub fn is_mobile(self) -> bool {
        matches!(self, Channel::MiniProgram | Channel::App)
    }
}

stored_enum!(ComplaintStatus {
    Received => "received",
    Accepted => "accepted",
    Rejected => "rejected",
    Dispatched => "dispatched",
    InProgress => "in_progress",
    Resolved => "resolved",
    Closed => "closed",
    Withdrawn => "withdrawn",
});

stored_enum!(Satisfaction {
    Satisfied => "satisfied",
    BasicallySatisfied => "basically_satisfied",
    Unsatisfied => "unsatisfied",
});

stored_enum!(EventKind {
    Received => "received",
    Accepted => "accepted",
    Rejected => "rejected",
    Dispatched => "dispatched",
    Progress => "progress",
    Resolved => "resolved",
    Rated => "rated",
    Reopened => "reopened",
    Closed => "closed",
    Withdrawn => "withdrawn",
    DeadlineChanged => "deadline_changed",
    Returned => "returned",
    Merged => "merged",
    Reminder => "reminder",
    Escalated => "escalated",
    Overdue => "overdue",
    Reported => "reported",
    ExtensionRequested => "extension_requested",
    ExtensionRefused => "extension_refused",
    FollowUp => "follow_up",
    Answered => "answered",
    HandedOver => "handed_over",
});

/// The client's idempotency key for one attempt to create something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(field: &str, raw: &str) -> Result<RequestId, FieldViolation> {
        let valid = (8..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(FieldViolation::new(
                field,
                "must be 8 to 64 characters of letters, digits, '-' and '_' (a UUID works)",
            ));
        }
        Ok(RequestId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A staff member's request id, kept apart from every citizen's ids.
    pub fn for_staff(staff: AccountId, request_id: &RequestId) -> RequestId {
        RequestId(format!("staff-{}-{}", staff.0, request_id.0))
    }
}

/// Free text from a person, trimmed, within a length range, and without
/// control characters other than line breaks and tabs.
fn parse_text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, FieldViolation> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars < min || chars > max {
        let reason = if min == 0 {
            format!("must be at most {max} characters")
        } else {
            format!("must be {min} to {max} characters")
        };
        return Err(FieldViolation::new(field, reason));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// An optional reason or comment; empty means none.
pub fn parse_optional_note(field: &str, raw: &str) -> Result<Option<String>, FieldViolation> {
    let text = parse_text(field, raw, 0, REASON_MAX_CHARS)?;
    Ok(if text.is_empty() { None } else { Some(text) })
}

/// Where the problem is, with coordinates already in WGS-84.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub address: Option<String>,
    pub point: Option<GeoPoint>,
}

/// Coordinates as a client sent them.
#[derive(Debug, Clone, Copy)]
pub struct RawCoordinates {
    pub latitude: f64,
    pub longitude: f64,
    pub datum: Option<Datum>,
}

/// A filing request as it arrives, before validation. Enum fields are
/// `None` when the client left them unspecified.
#[derive(Debug, Clone)]
pub struct FilingInput {
    pub request_id: String,
    pub kind: Option<ComplaintKind>,
    pub channel: Option<Channel>,
    pub text: String,
    pub category_code: String,
    pub address: String,
    pub coordinates: Option<RawCoordinates>,
    pub contact_phone: String,
    pub photo_ids: Vec<String>,
}

/// A filing request that passed every check.
#[derive(Debug, Clone)]
pub struct ValidFiling {
    pub request_id: RequestId,
    pub kind: ComplaintKind,
    pub channel: Channel,
    pub text: String,
    pub category_code: String,
    pub location: Location,
    pub contact_phone: Option<PhoneNumber>,
    pub photo_ids: Vec<String>,
}

impl FilingInput {
    /// Checks every field of a citizen's own filing, reporting all
    /// problems at once.
    pub fn parse(
        self,
        standard: &CategoryStandard,
        area: &ServiceArea,
    ) -> Result<ValidFiling, DomainError> {
        self.parse_from(standard, area, true)
    }

    /// The same checks for a matter staff register on a citizen's behalf,
    /// which arrives by hotline, at a counter or by staff entry. The staff
    /// request carries its own request id.
    pub fn parse_for_staff(
        mut self,
        standard: &CategoryStandard,
        area: &ServiceArea,
    ) -> Result<ValidFiling, DomainError> {
        if self.request_id.is_empty() {
            self.request_id = "staff-registered".to_owned();
        }
        self.parse_from(standard, area, false)
    }

    fn parse_from(
        self,
        standard: &CategoryStandard,
        area: &ServiceArea,
        by_citizen: bool,
    ) -> Result<ValidFiling, DomainError> {
        let mut violations = Violations::default();

        let request_id = violations.check(RequestId::parse("request_id", &self.request_id));
        let kind = required(&mut violations, "kind", self.kind);
        let channel = required(&mut violations, "channel", self.channel);
        match channel {
            Some(c) if by_citizen && !c.is_mobile() => violations.push(
                "channel",
                "citizens file through the mini-program or the app",
            ),
            Some(c) if !by_citizen && c.is_mobile() => violations.push(
                "channel",
                "staff register hotline, walk-in or staff-entered matters",
            ),
            _ => {}
        }
        let text = violations.check(parse_text(
            "text",
            &self.text,
            TEXT_MIN_CHARS,
            TEXT_MAX_CHARS,
        ));
        let category =
            violations.check(standard.fileable_leaf("category_code", &self.category_code));
        let location = violations.check(parse_location(&self.address, self.coordinates, area));
        let contact_phone = match self.contact_phone.trim() {
            "" => Some(None),
            raw => violations
                .check(PhoneNumber::parse("contact_phone", raw))
                .map(Some),
        };
        let photo_ids = violations.check(parse_photo_ids(self.photo_ids));

        violations.into_result()?;
        let missing = || anyhow::anyhow!("a field passed validation without a value");
        Ok(ValidFiling {
            request_id: request_id.ok_or_else(missing)?,
            kind: kind.ok_or_else(missing)?,
            channel: channel.ok_or_else(missing)?,
            text: text.ok_or_else(missing)?,
            category_code: category.ok_or_else(missing)?.code.clone(),
            location: location.ok_or_else(missing)?,
            contact_phone: contact_phone.ok_or_else(missing)?,
            photo_ids: photo_ids.ok_or_else(missing)?,
        })
    }
}

fn required<T>(violations: &mut Violations, field: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        violations.push(field, "must be set");
    }
    value
}

fn parse_location(
    raw_address: &str,
    coordinates: Option<RawCoordinates>,
    area: &ServiceArea,
) -> Result<Location, FieldViolation> {
    let address = parse_text("location.address", raw_address, 0, ADDRESS_MAX_CHARS)?;
    let point = match coordinates {
        None => None,
        Some(raw) => {
            let field = "location.coordinates";
            let Some(datum) = raw.datum else {
                return Err(FieldViolation::new(
                    format!("{field}.datum"),
                    "must be set: WGS84, or GCJ02 for WeChat's location picker",
                ));
            };
            let point = GeoPoint::parse(field, raw.latitude, raw.longitude, datum)?;
            area.check(field, point)?;
            Some(point)
        }
    };
    if address.is_empty() && point.is_none() {
        return Err(FieldViolation::new(
            "location",
            "give an address, coordinates, or both",
        ));
    }
    Ok(Location {
        address: (!address.is_empty()).then_some(address),
        point,
    })
}

fn parse_photo_ids(ids: Vec<String>) -> Result<Vec<String>, FieldViolation> {
    if ids.len() > MAX_PHOTOS {
        return Err(FieldViolation::new(
            "photo_ids",
            format!("at most {MAX_PHOTOS} photos"),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let valid = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(FieldViolation::new(
                format!("photo_ids[{i}]"),
                "must be an upload reference of letters, digits, '-', '_' and '.'",
            ));
        }
        if ids[..i].contains(id) {
            return Err(FieldViolation::new(
                format!("photo_ids[{i}]"),
                "appears twice",
            ));
        }
    }
    Ok(ids)
}

impl ValidFiling {
    /// A digest of what was asked, so that a retry can be told apart from a
    /// different complaint sent with a reused request id. The contact phone
    /// is left out: a digest of a phone number can be reversed by trying
    /// every number.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut hasher = Sha256::new();
        let mut field = |value: &str| {
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value.as_bytes());
        };
        field(self.kind.as_str());
        field(self.channel.as_str());
        field(&self.text);
        field(&self.category_code);
        field(self.location.address.as_deref().unwrap_or(""));
        let point = self
            .location
            .point
            .map(|p| format!("{:.7},{:.7}", p.latitude, p.longitude));
        field(point.as_deref().unwrap_or(""));
        for photo in &self.photo_ids {
            field(photo);
        }
        hasher.finalize().to_vec()
    }
}

/// What a citizen quotes on the phone: "HY", the filing date in the district,
/// and the complaint id, e.g. "HY20261203000042". It is derived, never stored,
/// so it cannot drift from the id it names.
pub fn tracking_number(id: ComplaintId, created_at: DateTime<Utc>) -> String {
    format!("HY{}{:06}", local_date(created_at).format("%Y%m%d"), id.0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    pub satisfaction: Satisfaction,
    pub comment: Option<String>,
    pub rated_at: DateTime<Utc>,
    /// The resolution this rating judges.
    pub round: u32,
}

/// A stored complaint.
#[derive(Debug, Clone, PartialEq)]
pub struct Complaint {
    pub id: ComplaintId,
    pub citizen_id: AccountId,
    pub kind: ComplaintKind,
    pub channel: Channel,
    pub status: ComplaintStatus,
    pub status_reason: Option<String>,
    pub text: String,
    pub category_code: String,
    pub location: Location,
    pub contact_phone_masked: Option<String>,
    pub photo_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolution_round: u32,
    pub rating: Option<Rating>,
    pub handling: Handling,
    pub last_sequence: u64,
    /// Bumped by every change; writers name the version they saw.
    pub version: u64,
}

/// The staff side of a complaint: who owns it, who handles it, and its clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handling {
    /// First-inquiry responsibility: the unit that first received the
    /// matter owns it until it is formally handed over.
    pub owner_unit_id: Option<String>,
    pub lead_unit_id: Option<String>,
    pub urgency: Option<Urgency>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// The deadline in force.
    pub deadline: Option<DateTime<Utc>>,
    /// Computed past the loaded holiday calendar, with weekends only.
    pub deadline_provisional: bool,
    pub overdue: bool,
    /// How far up the hierarchy an overdue case has been urged (0 = not).
    pub escalation_level: u32,
    /// How many times an unsatisfied rating sent the case back.
    pub rework_round: u32,
    pub resolution_summary: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Judged at resolution against the deadline then in force.
    pub resolved_on_time: Option<bool>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The case this complaint was merged into as a duplicate.
    pub merged_into: Option<ComplaintId>,
    /// An open complaint that looked like the same matter at filing.
    pub duplicate_hint: Option<ComplaintId>,
    /// A pending extension request.
    pub extension: Option<ExtensionRequest>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionRequest {
    pub unit_id: String,
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// One node of a complaint's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplaintEvent {
    pub complaint_id: ComplaintId,
    pub sequence: u64,
    pub kind: EventKind,
    pub status: ComplaintStatus,
    pub message: String,
    pub visible_to_citizen: bool,
    pub actor_id: Option<AccountId>,
    /// The unit the event concerns (who returned, who was urged, …).
    pub unit_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Citizen-visible events only: the complaint's citizen and the
    /// event's number in that citizen's feed.
    pub citizen_id: Option<AccountId>,
    pub citizen_sequence: Option<u64>,
}

/// An event about to be written; the store assigns its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub kind: EventKind,
    pub status: ComplaintStatus,
    pub message: String,
    pub visible_to_citizen: bool,
    pub actor_id: Option<AccountId>,
    /// The unit the event concerns (who returned, who was urged, …).
    pub unit_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// A complaint about to be written, with its first timeline event.
#[derive(Debug, Clone)]
pub struct NewComplaint {
    pub citizen_id: AccountId,
    pub request_id: RequestId,
    pub fingerprint: Vec<u8>,
    pub kind: ComplaintKind,
    pub channel: Channel,
    pub text: String,
    pub category_code: String,
    pub location: Location,
    /// Ciphertext of the contact phone, tagged with its key version.
    pub contact_phone_cipher: Option<String>,
    pub contact_phone_masked: Option<String>,
    pub photo_ids: Vec<String>,
    /// Whose uploads `photo_ids` name: the citizen's, or the staff member's
    /// who registered the matter.
    pub photos_uploaded_by: AccountId,
    pub created_at: DateTime<Utc>,
    /// The staff unit that registered the matter (first inquiry), if any.
    pub owner_unit_id: Option<String>,
    pub duplicate_hint: Option<ComplaintId>,
    pub first_event: EventDraft,
}

impl NewComplaint {
    pub fn received_event(citizen_id: AccountId, now: DateTime<Utc>) -> EventDraft {
        EventDraft {
            kind: EventKind::Received,
            status: ComplaintStatus::Received,
            message: "您的诉求已收到，正在等待审核。".to_owned(),
            visible_to_citizen: true,
            actor_id: Some(citizen_id),
            unit_id: None,
            occurred_at: now,
        }
    }
}

/// A complaint's new state and the events recording the change. Applied
/// only if the stored version still equals `expected_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplaintChange {
    pub expected_version: u64,
    pub after: Complaint,
    /// The case's units, when the change replaces them.
    pub assignments: Option<Vec<Assignment>>,
    /// At least one.
    pub events: Vec<EventDraft>,
    /// What the change does to the complaint's red envelope, in the same
    /// transaction.
    pub reward: Option<super::red_envelope::RewardEffect>,
}

impl ComplaintChange {
    pub fn id(&self) -> ComplaintId {
        self.after.id
    }
}

impl Complaint {
    /// A change to `status`, recorded by `event`; callers adjust `after`.
    pub fn change(&self, status: ComplaintStatus, event: EventDraft) -> ComplaintChange {
        let mut after = self.clone();
        after.status = status;
        after.updated_at = event.occurred_at;
        ComplaintChange {
            expected_version: self.version,
            after,
            assignments: None,
            events: vec![event],
            reward: None,
        }
    }

    /// The citizen takes an instant answer as the reply to their
    /// consultation, which closes it as answered. `None` when it was
    /// already closed with this answer: a retry changes nothing.
    pub fn accept_instant_answer(
        &self,
        answer: &str,
        actor: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Option<ComplaintChange>, DomainError> {
        if self.status == ComplaintStatus::Closed
            && self.handling.resolution_summary.as_deref() == Some(answer)
        {
            return Ok(None);
        }
        if self.kind != ComplaintKind::Consultation {
            return Err(DomainError::FailedPrecondition(
                "only consultations are answered from the knowledge base".to_owned(),
            ));
        }
        if self.status != ComplaintStatus::Received {
            return Err(DomainError::FailedPrecondition(format!(
                "an instant answer can be taken only before staff act; this one is {}",
                self.status.as_str()
            )));
        }
        let event = EventDraft {
            kind: EventKind::Answered,
            status: ComplaintStatus::Closed,
            message: format!("您已采纳智能答复：{answer}"),
            visible_to_citizen: true,
            actor_id: Some(actor),
            unit_id: None,
            occurred_at: now,
        };
        let mut change = self.change(ComplaintStatus::Closed, event);
        change.after.handling.resolution_summary = Some(answer.to_owned());
        change.after.handling.resolved_at = Some(now);
        change.after.handling.closed_at = Some(now);
        Ok(Some(change))
    }

    /// A citizen takes a complaint back before anyone has accepted it.
    /// `None` when it is already withdrawn: a retry changes nothing.
    pub fn withdraw(
        &self,
        reason: Option<String>,
        actor: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Option<ComplaintChange>, DomainError> {
        if self.status == ComplaintStatus::Withdrawn {
            return Ok(None);
        }
        if self.status != ComplaintStatus::Received {
            return Err(DomainError::FailedPrecondition(format!(
                "a complaint can be withdrawn only before it is accepted; this one is {}",
                self.status.as_str()
            )));
        }

        let event = EventDraft {
            kind: EventKind::Withdrawn,
            status: ComplaintStatus::Withdrawn,
            message: "您已撤回该诉求。".to_owned(),
            visible_to_citizen: true,
            actor_id: Some(actor),
            unit_id: None,
            occurred_at: now,
        };
        let mut change = self.change(ComplaintStatus::Withdrawn, event);
        change.after.status_reason = reason;
        change.after.handling.closed_at = Some(now);
        Ok(Some(change))
    }

    /// The citizen rates the current resolution. A satisfied rating closes
    /// the case. An unsatisfied one sends it back to the units for
    /// re-handling (重办) with `rework.deadline`, or, once the configured
    /// rounds are used up, to a district supervisor. `None` when the same
    /// rating is already recorded for this resolution (a retry).
    pub fn rate(
        &self,
        satisfaction: Satisfaction,
        comment: Option<String>,
        actor: AccountId,
        rework: &Rework,
        now: DateTime<Utc>,
    ) -> Result<Option<ComplaintChange>, DomainError> {
        if let Some(existing) = &self.rating
            && existing.round == self.resolution_round
        {
            if existing.satisfaction == satisfaction && existing.comment == comment {
                return Ok(None);
            }
            return Err(DomainError::FailedPrecondition(
                "this resolution has already been rated".to_owned(),
            ));
        }
        if self.status != ComplaintStatus::Resolved {
            return Err(DomainError::FailedPrecondition(format!(
                "a complaint can be rated only once it is resolved; this one is {}",
                self.status.as_str()
            )));
        }

        let rating = Rating {
            satisfaction,
            comment,
            rated_at: now,
            round: self.resolution_round,
        };
        let mut change = match satisfaction {
            Satisfaction::Unsatisfied => self.reopen(actor, rework, now),
            Satisfaction::Satisfied | Satisfaction::BasicallySatisfied => {
                let event = EventDraft {
                    kind: EventKind::Closed,
                    status: ComplaintStatus::Closed,
                    message: "感谢您的评价，诉求已办结归档。".to_owned(),
                    visible_to_citizen: true,
                    actor_id: Some(actor),
                    unit_id: None,
                    occurred_at: now,
                };
                let mut change = self.change(ComplaintStatus::Closed, event);
                change.after.handling.closed_at = Some(now);
                change
            }
        };
        change.after.rating = Some(rating);
        Ok(Some(change))
    }

    fn reopen(&self, actor: AccountId, rework: &Rework, now: DateTime<Utc>) -> ComplaintChange {
        let to_district = self.handling.rework_round >= rework.max_rounds;
        let message = if to_district {
            "您对办理结果不满意，诉求已提交区级督办。"
        } else {
            "您对办理结果不满意，诉求已退回重新办理。"
        };
        let event = EventDraft {
            kind: EventKind::Reopened,
            status: ComplaintStatus::InProgress,
            message: message.to_owned(),
            visible_to_citizen: true,
            actor_id: Some(actor),
            unit_id: None,
            occurred_at: now,
        };
        let mut change = self.change(ComplaintStatus::InProgress, event);
        let handling = &mut change.after.handling;
        handling.rework_round += 1;
        handling.deadline = Some(rework.deadline.at);
        handling.deadline_provisional = rework.deadline.provisional;
        handling.overdue = false;
        handling.resolved_at = None;
        handling.resolved_on_time = None;
        if to_district {
            // The district supervisor now owns the matter.
            handling.escalation_level = handling.escalation_level.max(2);
        }
        change
    }
}

/// What an unsatisfied rating leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rework {
    /// Re-handling rounds the units get before a district supervisor takes over.
    pub max_rounds: u32,
    /// The deadline of the new round.
    pub deadline: Deadline,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn standard_and_area() -> (CategoryStandard, ServiceArea) {
        let area = ServiceArea {
            centre: GeoPoint {
                latitude: 22.693572,
                longitude: 114.3414,
            },
            radius_km: 25.0,
        };
        (CategoryStandard::bundled(), area)
    }

    fn input() -> FilingInput {
        FilingInput {
            request_id: "req-0001-abcd".to_owned(),
            kind: Some(ComplaintKind::Complaint),
            channel: Some(Channel::MiniProgram),
            text: "  路边垃圾堆积三天无人清理  ".to_owned(),
            category_code: "010102".to_owned(),
            address: "坪山街道坪山大道1号".to_owned(),
            coordinates: None,
            contact_phone: String::new(),
            photo_ids: vec![],
        }
    }

    fn fields(error: DomainError) -> Vec<String> {
        match error {
            DomainError::InvalidInput(violations) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, hour, 0, 0).unwrap()
    }

    fn complaint(status: ComplaintStatus) -> Complaint {
        Complaint {
            id: ComplaintId(7),
            citizen_id: AccountId(1),
            kind: ComplaintKind::Complaint,
            channel: Channel::App,
            status,
            status_reason: None,
            text: "路灯不亮已经一周".to_owned(),
            category_code: "010102".to_owned(),
            location: Location {
                address: Some("x".to_owned()),
                point: None,
            },
            contact_phone_masked: None,
            photo_ids: vec![],
            created_at: at(1),
            updated_at: at(1),
            resolution_round: 0,
            rating: None,
            handling: Handling::default(),
            last_sequence: 1,
            version: 1,
        }
    }

    #[test]
    fn a_valid_filing_is_trimmed_and_kept() {
        let (standard, area) = standard_and_area();
        let filing = input().parse(&standard, &area).unwrap();
        assert_eq!(filing.text, "路边垃圾堆积三天无人清理");
        assert_eq!(
            filing.location.address.as_deref(),
            Some("坪山街道坪山大道1号")
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let (standard, area) = standard_and_area();
        let bad = FilingInput {
            request_id: "short".to_owned(),
            kind: None,
            channel: Some(Channel::Hotline),
            text: "短".to_owned(),
            category_code: "01".to_owned(),
            address: String::new(),
            coordinates: None,
            contact_phone: "12345".to_owned(),
            photo_ids: vec!["a b".to_owned()],
        };
        let reported = fields(bad.parse(&standard, &area).unwrap_err());
        for field in [
            "request_id",
            "kind",
            "channel",
            "text",
            "category_code",
            "location",
            "contact_phone",
            "photo_ids[0]",
        ] {
            assert!(
                reported.iter().any(|f| f == field),
                "{field} missing in {reported:?}"
            );
        }
    }

    #[test]
    fn coordinates_need_a_datum_and_must_be_near_the_district() {
        let (standard, area) = standard_and_area();
        let mut no_datum = input();
        no_datum.coordinates = Some(RawCoordinates {
            latitude: 22.69,
            longitude: 114.34,
            datum: None,
        });
        assert_eq!(
            fields(no_datum.parse(&standard, &area).unwrap_err()),
            ["location.coordinates.datum"]
        );

        let mut far = input();
        far.coordinates = Some(RawCoordinates {
            latitude: 39.9,
            longitude: 116.4,
            datum: Some(Datum::Gcj02),
        });
        assert_eq!(
            fields(far.parse(&standard, &area).unwrap_err()),
            ["location.coordinates"]
        );
    }

    #[test]
    fn the_fingerprint_tells_a_retry_from_a_different_complaint() {
        let (standard, area) = standard_and_area();
        let first = input().parse(&standard, &area).unwrap();
        let retry = input().parse(&standard, &area).unwrap();
        let mut other = input();
        other.text = "另一个问题：噪音扰民严重".to_owned();
        let other = other.parse(&standard, &area).unwrap();
        assert_eq!(first.fingerprint(), retry.fingerprint());
        assert_ne!(first.fingerprint(), other.fingerprint());
    }

    #[test]
    fn the_tracking_number_uses_the_district_date() {
        let late_evening_utc = Utc.with_ymd_and_hms(2026, 12, 3, 17, 0, 0).unwrap();
        assert_eq!(
            tracking_number(ComplaintId(42), late_evening_utc),
            "HY20261204000042"
        );
    }

    #[test]
    fn only_a_received_complaint_can_be_withdrawn() {
        let change = complaint(ComplaintStatus::Received)
            .withdraw(Some("已自行解决".to_owned()), AccountId(1), at(2))
            .unwrap()
            .expect("a received complaint changes");
        assert_eq!(change.after.status, ComplaintStatus::Withdrawn);
        assert_eq!(change.events[0].kind, EventKind::Withdrawn);
        assert_eq!(change.expected_version, 1);

        let refused = complaint(ComplaintStatus::Accepted).withdraw(None, AccountId(1), at(2));
        assert!(matches!(refused, Err(DomainError::FailedPrecondition(_))));

        let retry = complaint(ComplaintStatus::Withdrawn).withdraw(None, AccountId(1), at(3));
        assert_eq!(retry.unwrap(), None);
    }

    fn rework(at_hour: u32) -> Rework {
        Rework {
            max_rounds: 1,
            deadline: Deadline {
                at: at(at_hour),
                provisional: false,
            },
        }
    }

    #[test]
    fn rating_needs_a_resolution_and_happens_once_per_round() {
        let unresolved = complaint(ComplaintStatus::InProgress);
        let early = unresolved.rate(
            Satisfaction::Satisfied,
            None,
            AccountId(1),
            &rework(9),
            at(3),
        );
        assert!(matches!(early, Err(DomainError::FailedPrecondition(_))));

        let mut case = complaint(ComplaintStatus::Resolved);
        case.resolution_round = 1;
        let rated = case
            .rate(
                Satisfaction::Satisfied,
                None,
                AccountId(1),
                &rework(9),
                at(3),
            )
            .unwrap()
            .expect("the first rating must be recorded");
        assert_eq!(rated.after.status, ComplaintStatus::Closed);
        assert_eq!(rated.after.rating.as_ref().unwrap().round, 1);

        let case = rated.after;
        let retry = case.rate(
            Satisfaction::Satisfied,
            None,
            AccountId(1),
            &rework(9),
            at(4),
        );
        assert_eq!(retry.unwrap(), None);
        let changed_mind = case.rate(
            Satisfaction::Unsatisfied,
            None,
            AccountId(1),
            &rework(9),
            at(4),
        );
        assert!(matches!(
            changed_mind,
            Err(DomainError::FailedPrecondition(_))
        ));
    }

    #[test]
    fn an_unsatisfied_rating_sends_the_case_back_with_a_new_deadline() {
        let mut case = complaint(ComplaintStatus::Resolved);
        case.resolution_round = 1;
        let change = case
            .rate(
                Satisfaction::Unsatisfied,
                Some("没有解决".to_owned()),
                AccountId(1),
                &rework(9),
                at(5),
            )
            .unwrap()
            .expect("an unsatisfied rating must be recorded");
        assert_eq!(change.after.status, ComplaintStatus::InProgress);
        assert_eq!(change.after.handling.rework_round, 1);
        assert_eq!(change.after.handling.deadline, Some(at(9)));
        assert_eq!(change.after.handling.escalation_level, 0);
    }

    #[test]
    fn past_the_last_round_a_district_supervisor_takes_over() {
        let mut case = complaint(ComplaintStatus::Resolved);
        case.resolution_round = 2;
        case.handling.rework_round = 1;
        let change = case
            .rate(
                Satisfaction::Unsatisfied,
                None,
                AccountId(1),
                &rework(9),
                at(5),
            )
            .unwrap()
            .unwrap();
        assert_eq!(change.after.handling.escalation_level, 2);
        assert!(change.events[0].message.contains("区级督办"));
    }
}
