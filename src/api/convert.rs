//! Conversions between protobuf messages and domain values. Unknown or
//! unspecified enum values become `None`, which the domain reports as a
//! missing field.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::domain::account::Role;
use crate::domain::category::{Category, TimeLimitUnit, Urgency};
use crate::domain::complaint::{
    Channel, Complaint, ComplaintEvent, ComplaintKind, ComplaintStatus, EventKind, FilingInput,
    RawCoordinates, Satisfaction,
};
use crate::domain::geo::Datum;
use crate::proto::v1 as pb;

pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub fn role_from_proto(value: i32) -> Option<Role> {
    Some(match pb::Role::try_from(value).ok()? {
        pb::Role::Unspecified => return None,
        pb::Role::Citizen => Role::Citizen,
        pb::Role::Dispatcher => Role::Dispatcher,
        pb::Role::Handler => Role::Handler,
        pb::Role::UnitSupervisor => Role::UnitSupervisor,
        pb::Role::DistrictSupervisor => Role::DistrictSupervisor,
        pb::Role::Auditor => Role::Auditor,
        pb::Role::SystemAdmin => Role::SystemAdmin,
        pb::Role::SecurityAdmin => Role::SecurityAdmin,
        pb::Role::AuditAdmin => Role::AuditAdmin,
    })
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Citizen => pb::Role::Citizen,
        Role::Dispatcher => pb::Role::Dispatcher,
        Role::Handler => pb::Role::Handler,
        Role::UnitSupervisor => pb::Role::UnitSupervisor,
        Role::DistrictSupervisor => pb::Role::DistrictSupervisor,
        Role::Auditor => pb::Role::Auditor,
        Role::SystemAdmin => pb::Role::SystemAdmin,
        Role::SecurityAdmin => pb::Role::SecurityAdmin,
        Role::AuditAdmin => pb::Role::AuditAdmin,
    }
}

fn kind_from_proto(value: i32) -> Option<ComplaintKind> {
    Some(match pb::ComplaintKind::try_from(value).ok()? {
        pb::ComplaintKind::Unspecified => return None,
        pb::ComplaintKind::Complaint => ComplaintKind::Complaint,
        pb::ComplaintKind::Suggestion => ComplaintKind::Suggestion,
        pb::ComplaintKind::Consultation => ComplaintKind::Consultation,
    })
}

fn kind_to_proto(kind: ComplaintKind) -> pb::ComplaintKind {
    match kind {
        ComplaintKind::Complaint => pb::ComplaintKind::Complaint,
        ComplaintKind::Suggestion => pb::ComplaintKind::Suggestion,
        ComplaintKind::Consultation => pb::ComplaintKind::Consultation,
    }
}

fn channel_from_proto(value: i32) -> Option<Channel> {
    Some(match pb::Channel::try_from(value).ok()? {
        pb::Channel::Unspecified => return None,
        pb::Channel::MiniProgram => Channel::MiniProgram,
        pb::Channel::App => Channel::App,
        pb::Channel::Hotline => Channel::Hotline,
        pb::Channel::WalkIn => Channel::WalkIn,
        pb::Channel::StaffEntered => Channel::StaffEntered,
    })
}

fn channel_to_proto(channel: Channel) -> pb::Channel {
    match channel {
        Channel::MiniProgram => pb::Channel::MiniProgram,
        Channel::App => pb::Channel::App,
        Channel::Hotline => pb::Channel::Hotline,
        Channel::WalkIn => pb::Channel::WalkIn,
        Channel::StaffEntered => pb::Channel::StaffEntered,
    }
}

pub fn status_from_proto(value: i32) -> Option<ComplaintStatus> {
    Some(match pb::ComplaintStatus::try_from(value).ok()? {
        pb::ComplaintStatus::Unspecified => return None,
        pb::ComplaintStatus::Received => ComplaintStatus::Received,
        pb::ComplaintStatus::Accepted => ComplaintStatus::Accepted,
        pb::ComplaintStatus::Rejected => ComplaintStatus::Rejected,
        pb::ComplaintStatus::Dispatched => ComplaintStatus::Dispatched,
        pb::ComplaintStatus::InProgress => ComplaintStatus::InProgress,
        pb::ComplaintStatus::Resolved => ComplaintStatus::Resolved,
        pb::ComplaintStatus::Closed => ComplaintStatus::Closed,
        pb::ComplaintStatus::Withdrawn => ComplaintStatus::Withdrawn,
    })
}

fn status_to_proto(status: ComplaintStatus) -> pb::ComplaintStatus {
    match status {
        ComplaintStatus::Received => pb::ComplaintStatus::Received,
        ComplaintStatus::Accepted => pb::ComplaintStatus::Accepted,
        ComplaintStatus::Rejected => pb::ComplaintStatus::Rejected,
        ComplaintStatus::Dispatched => pb::ComplaintStatus::Dispatched,
        ComplaintStatus::InProgress => pb::ComplaintStatus::InProgress,
        ComplaintStatus::Resolved => pb::ComplaintStatus::Resolved,
        ComplaintStatus::Closed => pb::ComplaintStatus::Closed,
        ComplaintStatus::Withdrawn => pb::ComplaintStatus::Withdrawn,
    }
}

pub fn satisfaction_from_proto(value: i32) -> Option<Satisfaction> {
    Some(match pb::Satisfaction::try_from(value).ok()? {
        pb::Satisfaction::Unspecified => return None,
        pb::Satisfaction::Satisfied => Satisfaction::Satisfied,
        pb::Satisfaction::BasicallySatisfied => Satisfaction::BasicallySatisfied,
        pb::Satisfaction::Unsatisfied => Satisfaction::Unsatisfied,
    })
}

fn satisfaction_to_proto(satisfaction: Satisfaction) -> pb::Satisfaction {
    match satisfaction {
        Satisfaction::Satisfied => pb::Satisfaction::Satisfied,
        Satisfaction::BasicallySatisfied => pb::Satisfaction::BasicallySatisfied,
        Satisfaction::Unsatisfied => pb::Satisfaction::Unsatisfied,
    }
}

fn event_kind_to_proto(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Received => pb::EventKind::Received,
        EventKind::Accepted => pb::EventKind::Accepted,
        EventKind::Rejected => pb::EventKind::Rejected,
        EventKind::Dispatched => pb::EventKind::Dispatched,
        EventKind::Progress => pb::EventKind::Progress,
        EventKind::Resolved => pb::EventKind::Resolved,
        EventKind::Rated => pb::EventKind::Rated,
        EventKind::Reopened => pb::EventKind::Reopened,
        EventKind::Closed => pb::EventKind::Closed,
        EventKind::Withdrawn => pb::EventKind::Withdrawn,
        EventKind::DeadlineChanged => pb::EventKind::DeadlineChanged,
        EventKind::Returned => pb::EventKind::Returned,
        EventKind::Merged => pb::EventKind::Merged,
        EventKind::Reminder => pb::EventKind::Reminder,
        EventKind::Escalated => pb::EventKind::Escalated,
        EventKind::Overdue => pb::EventKind::Overdue,
        EventKind::Reported => pb::EventKind::Reported,
        EventKind::ExtensionRequested => pb::EventKind::ExtensionRequested,
        EventKind::ExtensionRefused => pb::EventKind::ExtensionRefused,
        EventKind::FollowUp => pb::EventKind::FollowUp,
        EventKind::Answered => pb::EventKind::Answered,
        EventKind::HandedOver => pb::EventKind::HandedOver,
    }
}

fn datum_from_proto(value: i32) -> Option<Datum> {
    match pb::Datum::try_from(value).ok()? {
        pb::Datum::Unspecified => None,
        pb::Datum::Wgs84 => Some(Datum::Wgs84),
        pb::Datum::Gcj02 => Some(Datum::Gcj02),
    }
}

pub fn filing_input(request: pb::FileComplaintRequest) -> FilingInput {
    let location = request.location.unwrap_or_default();
    FilingInput {
        request_id: request.request_id,
        kind: kind_from_proto(request.kind),
        channel: channel_from_proto(request.channel),
        text: request.text,
        category_code: request.category_code,
        address: location.address,
        coordinates: location.coordinates.map(|c| RawCoordinates {
            latitude: c.latitude,
            longitude: c.longitude,
            datum: datum_from_proto(c.datum),
        }),
        contact_phone: request.contact_phone,
        photo_ids: request.photo_ids,
    }
}

pub fn complaint(complaint: &Complaint) -> pb::Complaint {
    let location = pb::Location {
        address: complaint.location.address.clone().unwrap_or_default(),
        coordinates: complaint.location.point.map(|p| pb::Coordinates {
            latitude: p.latitude,
            longitude: p.longitude,
            datum: pb::Datum::Wgs84.into(),
        }),
    };
    pb::Complaint {
        id: complaint.id.to_string(),
        tracking_number: crate::domain::complaint::tracking_number(
            complaint.id,
            complaint.created_at,
        ),
        kind: kind_to_proto(complaint.kind).into(),
        channel: channel_to_proto(complaint.channel).into(),
        status: status_to_proto(complaint.status).into(),
        text: complaint.text.clone(),
        category_code: complaint.category_code.clone(),
        location: Some(location),
        contact_phone_masked: complaint.contact_phone_masked.clone().unwrap_or_default(),
        photo_ids: complaint.photo_ids.clone(),
        created_at: Some(timestamp(complaint.created_at)),
        updated_at: Some(timestamp(complaint.updated_at)),
        deadline: complaint.handling.deadline.map(timestamp),
        status_reason: complaint.status_reason.clone().unwrap_or_default(),
        resolution_round: complaint.resolution_round,
        rating: complaint.rating.as_ref().map(|rating| pb::Rating {
            satisfaction: satisfaction_to_proto(rating.satisfaction).into(),
            comment: rating.comment.clone().unwrap_or_default(),
            rated_at: Some(timestamp(rating.rated_at)),
            resolution_round: rating.round,
        }),
        last_sequence: complaint.last_sequence,
    }
}

pub fn event(event: &ComplaintEvent) -> pb::ComplaintEvent {
    pb::ComplaintEvent {
        complaint_id: event.complaint_id.to_string(),
        sequence: event.sequence,
        kind: event_kind_to_proto(event.kind).into(),
        occurred_at: Some(timestamp(event.occurred_at)),
        status: status_to_proto(event.status).into(),
        message: event.message.clone(),
        feed_cursor: event.citizen_sequence.unwrap_or_default(),
    }
}

pub fn category(category: &Category) -> pb::Category {
    pb::Category {
        code: category.code.clone(),
        name_zh: category.name_zh.clone(),
        name_en: category.name_en.clone(),
        level: category.level,
        responsible_unit: category.responsible_unit.clone().unwrap_or_default(),
        time_limit: category.time_limit.map(|limit| pb::TimeLimit {
            value: limit.value,
            unit: match limit.unit {
                TimeLimitUnit::Hours => pb::TimeLimitUnit::Hours,
                TimeLimitUnit::WorkingHours => pb::TimeLimitUnit::WorkingHours,
                TimeLimitUnit::WorkingDays => pb::TimeLimitUnit::WorkingDays,
            }
            .into(),
            inferred: limit.inferred,
        }),
        urgency: match category.urgency {
            None => pb::Urgency::Unspecified,
            Some(Urgency::Normal) => pb::Urgency::Normal,
            Some(Urgency::Urgent) => pb::Urgency::Urgent,
        }
        .into(),
        redirect_to: category.redirect_to.clone().unwrap_or_default(),
        children: category.children.iter().map(self::category).collect(),
    }
}

pub fn case(case: &crate::domain::case::Case) -> pb::Case {
    use crate::domain::case::AssignmentStatus;
    let handling = &case.complaint.handling;
    pb::Case {
        complaint: Some(complaint(&case.complaint)),
        version: case.complaint.version,
        owner_unit_id: handling.owner_unit_id.clone().unwrap_or_default(),
        lead_unit_id: handling.lead_unit_id.clone().unwrap_or_default(),
        assignments: case
            .assignments
            .iter()
            .map(|a| pb::Assignment {
                unit_id: a.unit_id.clone(),
                lead: a.lead,
                status: match a.status {
                    AssignmentStatus::Assigned => pb::AssignmentStatus::Assigned,
                    AssignmentStatus::Reported => pb::AssignmentStatus::Reported,
                    AssignmentStatus::Returned => pb::AssignmentStatus::Returned,
                }
                .into(),
                note: a.note.clone().unwrap_or_default(),
                assigned_at: Some(timestamp(a.assigned_at)),
            })
            .collect(),
        deadline_provisional: handling.deadline_provisional,
        overdue: handling.overdue,
        escalation_level: handling.escalation_level,
        rework_round: handling.rework_round,
        pending_extension: handling.extension.as_ref().map(|e| pb::PendingExtension {
            unit_id: e.unit_id.clone(),
            until: Some(timestamp(e.until)),
            reason: e.reason.clone(),
        }),
        merged_into: handling
            .merged_into
            .map(|id| id.to_string())
            .unwrap_or_default(),
        accepted_at: handling.accepted_at.map(timestamp),
        resolved_at: handling.resolved_at.map(timestamp),
        resolved_on_time: handling.resolved_on_time.unwrap_or(false),
        resolution_summary: handling.resolution_summary.clone().unwrap_or_default(),
        probable_duplicate_of: handling
            .duplicate_hint
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

pub fn case_event(event: &ComplaintEvent) -> pb::CaseEvent {
    pb::CaseEvent {
        event: Some(self::event(event)),
        visible_to_citizen: event.visible_to_citizen,
        unit_id: event.unit_id.clone().unwrap_or_default(),
        actor_account_id: event.actor_id.map(|a| a.to_string()).unwrap_or_default(),
    }
}

pub fn time_from_proto(
    field: &str,
    at: Option<Timestamp>,
) -> Result<DateTime<Utc>, crate::domain::DomainError> {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .ok_or_else(|| crate::domain::DomainError::invalid(field, "must be a valid time"))
}

pub fn unit(unit: &crate::domain::directory::Unit) -> pb::Unit {
    use crate::domain::directory::UnitKind;
    pb::Unit {
        id: unit.id.clone(),
        kind: match unit.kind {
            UnitKind::Centre => pb::UnitKind::Centre,
            UnitKind::Fallback => pb::UnitKind::Fallback,
            UnitKind::Subdistrict => pb::UnitKind::Subdistrict,
            UnitKind::SubdistrictOffice => pb::UnitKind::SubdistrictOffice,
            UnitKind::Community => pb::UnitKind::Community,
            UnitKind::Department => pb::UnitKind::Department,
            UnitKind::Utility => pb::UnitKind::Utility,
            UnitKind::Contractor => pb::UnitKind::Contractor,
        }
        .into(),
        name_zh: unit.name_zh.clone(),
        name_en: unit.name_en.clone(),
        parent_id: unit.parent_id.clone().unwrap_or_default(),
    }
}

pub fn unit_from_proto(
    unit: pb::Unit,
) -> Result<crate::domain::directory::Unit, crate::domain::DomainError> {
    use crate::domain::directory::UnitKind;
    let kind = match pb::UnitKind::try_from(unit.kind).unwrap_or(pb::UnitKind::Unspecified) {
        pb::UnitKind::Unspecified => {
            return Err(crate::domain::DomainError::invalid(
                "unit.kind",
                "must be set",
            ));
        }
        pb::UnitKind::Centre => UnitKind::Centre,
        pb::UnitKind::Fallback => UnitKind::Fallback,
        pb::UnitKind::Subdistrict => UnitKind::Subdistrict,
        pb::UnitKind::SubdistrictOffice => UnitKind::SubdistrictOffice,
        pb::UnitKind::Community => UnitKind::Community,
        pb::UnitKind::Department => UnitKind::Department,
        pb::UnitKind::Utility => UnitKind::Utility,
        pb::UnitKind::Contractor => UnitKind::Contractor,
    };
    Ok(crate::domain::directory::Unit {
        id: unit.id,
        kind,
        name_zh: unit.name_zh,
        name_en: unit.name_en,
        parent_id: (!unit.parent_id.is_empty()).then_some(unit.parent_id),
    })
}

/// A citizen's export: their own data, unmasked.
pub fn citizen_export(
    export: &crate::domain::personal_data::CitizenExport,
) -> pb::ExportMyDataResponse {
    let (notice_version, notice_at) = export.privacy_notice.clone().unzip();
    pb::ExportMyDataResponse {
        account_id: export.account_id.to_string(),
        display_name: export.display_name.clone(),
        phone: export
            .phone
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default(),
        wechat_identities: export
            .wechat
            .iter()
            .map(|w| pb::ExportedWeChatIdentity {
                app_id: w.app_id.clone(),
                openid: w.openid.clone(),
                unionid: w.unionid.clone().unwrap_or_default(),
                linked_at: Some(timestamp(w.linked_at)),
            })
            .collect(),
        privacy_notice_version: notice_version.unwrap_or_default(),
        privacy_notice_accepted_at: notice_at.map(timestamp),
        complaints: export
            .complaints
            .iter()
            .map(|c| pb::ExportedComplaint {
                complaint: Some(complaint(&c.complaint)),
                contact_phone: c
                    .contact_phone
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default(),
                timeline: c.timeline.iter().map(event).collect(),
            })
            .collect(),
        exported_at: Some(timestamp(export.exported_at)),
    }
}
