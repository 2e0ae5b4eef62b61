//! The staff side of the closed loop: filing decisions, dispatch through
//! "1+6+N", returns, extensions, progress, resolution, merging and
//! follow-up. Each action checks who may take it and from which state, and
//! returns the change to write; nothing here touches storage.

use chrono::{DateTime, Utc};

use super::account::{AccountId, Role};
use super::calendar::Deadline;
use super::category::Urgency;
use super::complaint::{
    Complaint, ComplaintChange, ComplaintId, ComplaintKind, ComplaintStatus, EventDraft, EventKind,
    ExtensionRequest,
};
use super::directory::{Directory, UnitKind};
use super::error::DomainError;

macro_rules! assignment_statuses {
    ($($variant:ident => $text:literal),+ $(,)?) => {
        /// Where one unit stands on a case it was given.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AssignmentStatus { $($variant),+ }

        impl AssignmentStatus {
            pub fn as_str(self) -> &'static str {
                match self { $(AssignmentStatus::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<AssignmentStatus> {
                match text { $($text => Some(AssignmentStatus::$variant),)+ _ => None }
            }
        }
    };
}

// Reported: a co-unit reported its part done. Returned: the unit sent the
// case back as outside its remit (退单).
assignment_statuses! {
    Assigned => "assigned",
    Reported => "reported",
    Returned => "returned",
}

/// One unit's part in a case.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub unit_id: String,
    /// The lead unit resolves the case; co-units report to it.
    pub lead: bool,
    pub status: AssignmentStatus,
    pub note: Option<String>,
    pub assigned_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A complaint with the units handling it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub complaint: Complaint,
    pub assignments: Vec<Assignment>,
}

/// A signed-in staff member acting on a case.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub account_id: AccountId,
    pub role: Role,
    pub unit_id: &'a str,
}

/// Units a dispatch names: one lead and any co-units (并联派件).
#[derive(Debug, Clone)]
pub struct DispatchPlan {
    pub lead: String,
    pub co_units: Vec<String>,
}

fn refuse(reason: impl Into<String>) -> DomainError {
    DomainError::FailedPrecondition(reason.into())
}

fn denied(reason: impl Into<String>) -> DomainError {
    DomainError::PermissionDenied(reason.into())
}

fn required_text(field: &str, text: &str) -> Result<String, DomainError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 2000 {
        return Err(DomainError::invalid(field, "must be 1 to 2000 characters"));
    }
    Ok(text.to_owned())
}

impl Case {
    pub fn id(&self) -> ComplaintId {
        self.complaint.id
    }

    fn status(&self) -> ComplaintStatus {
        self.complaint.status
    }

    fn event(
        &self,
        kind: EventKind,
        status: ComplaintStatus,
        actor: &Actor,
        message: String,
    ) -> EventDraft {
        EventDraft {
            kind,
            status,
            message,
            visible_to_citizen: true,
            actor_id: Some(actor.account_id),
            unit_id: Some(actor.unit_id.to_owned()),
            occurred_at: DateTime::<Utc>::MIN_UTC,
        }
    }

    fn change_at(
        &self,
        status: ComplaintStatus,
        mut event: EventDraft,
        now: DateTime<Utc>,
    ) -> ComplaintChange {
        event.occurred_at = now;
        self.complaint.change(status, event)
    }

    fn expect_status(&self, allowed: &[ComplaintStatus], action: &str) -> Result<(), DomainError> {
        if allowed.contains(&self.status()) {
            return Ok(());
        }
        Err(refuse(format!(
            "a case cannot be {action} while it is {}",
            self.status().as_str()
        )))
    }

    /// The caller's assignment on a case being handled.
    fn handling_assignment(
        &self,
        actor: &Actor,
        directory: &Directory,
        action: &str,
    ) -> Result<Assignment, DomainError> {
        self.expect_status(
            &[ComplaintStatus::Dispatched, ComplaintStatus::InProgress],
            action,
        )?;
        self.own_assignment(actor, directory).cloned()
    }

    /// The caller's own active assignment on this case.
    fn own_assignment(
        &self,
        actor: &Actor,
        directory: &Directory,
    ) -> Result<&Assignment, DomainError> {
        let reaches = |unit: &str| match actor.role {
            Role::Handler => unit == actor.unit_id,
            Role::UnitSupervisor => directory.is_within(unit, actor.unit_id),
            _ => false,
        };
        self.assignments
            .iter()
            .find(|a| a.status != AssignmentStatus::Returned && reaches(&a.unit_id))
            .ok_or_else(|| denied("this case is not assigned to your unit"))
    }

    /// Accepts a complaint for filing (立案) with the deadline its category
    /// gives; the district centre becomes its first-inquiry owner.
    pub fn accept(
        &self,
        actor: &Actor,
        deadline: Deadline,
        urgency: Option<Urgency>,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        self.expect_status(&[ComplaintStatus::Received], "accepted")?;
        let message = format!("您的诉求已受理，将在{}前办结。", local_time(deadline.at));
        let event = self.event(
            EventKind::Accepted,
            ComplaintStatus::Accepted,
            actor,
            message,
        );
        let mut change = self.change_at(ComplaintStatus::Accepted, event, now);
        let handling = &mut change.after.handling;
        handling.owner_unit_id = Some(actor.unit_id.to_owned());
        handling.urgency = urgency;
        handling.accepted_at = Some(now);
        handling.deadline = Some(deadline.at);
        handling.deadline_provisional = deadline.provisional;
        Ok(change)
    }

    /// Refuses to file a complaint; the reason is shown to the citizen.
    pub fn reject(
        &self,
        actor: &Actor,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let reason = required_text("reason", reason)?;
        self.expect_status(&[ComplaintStatus::Received], "rejected")?;
        let message = format!("您的诉求未予受理：{reason}");
        let event = self.event(
            EventKind::Rejected,
            ComplaintStatus::Rejected,
            actor,
            message,
        );
        let mut change = self.change_at(ComplaintStatus::Rejected, event, now);
        change.after.status_reason = Some(reason);
        change.after.handling.closed_at = Some(now);
        Ok(change)
    }

    /// Answers a consultation directly and closes it.
    pub fn answer(
        &self,
        actor: &Actor,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let answer = required_text("answer", answer)?;
        if self.complaint.kind != ComplaintKind::Consultation {
            return Err(refuse("only consultations are answered directly"));
        }
        self.expect_status(
            &[ComplaintStatus::Received, ComplaintStatus::Accepted],
            "answered",
        )?;
        let event = self.event(
            EventKind::Answered,
            ComplaintStatus::Closed,
            actor,
            format!("答复：{answer}"),
        );
        let mut change = self.change_at(ComplaintStatus::Closed, event, now);
        change.after.handling.resolution_summary = Some(answer);
        change.after.handling.resolved_at = Some(now);
        change.after.handling.closed_at = Some(now);
        Ok(change)
    }

    /// Sends the case to one lead unit and any co-units, replacing the
    /// previous assignment (a re-dispatch after a return).
    pub fn dispatch(
        &self,
        actor: &Actor,
        plan: &DispatchPlan,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        self.expect_status(&[ComplaintStatus::Accepted], "dispatched")?;
        let units = check_plan(plan, directory)?;

        let names: Vec<&str> = units
            .iter()
            .map(|(id, _)| directory_name(directory, id))
            .collect();
        let message = format!("您的诉求已派发至{}办理。", names.join("、"));
        let mut event = self.event(
            EventKind::Dispatched,
            ComplaintStatus::Dispatched,
            actor,
            message,
        );
        event.unit_id = Some(plan.lead.clone());
        let mut change = self.change_at(ComplaintStatus::Dispatched, event, now);
        change.after.handling.lead_unit_id = Some(plan.lead.clone());
        change.assignments = Some(
            units
                .into_iter()
                .map(|(unit_id, lead)| Assignment {
                    unit_id,
                    lead,
                    status: AssignmentStatus::Assigned,
                    note: None,
                    assigned_at: now,
                    updated_at: now,
                })
                .collect(),
        );
        Ok(change)
    }

    /// A unit sends back a case outside its remit. When the lead (or the
    /// last unit) returns it, the case goes back to the centre for
    /// re-dispatch; a co-unit returning only leaves the others.
    pub fn return_to_centre(
        &self,
        actor: &Actor,
        reason: &str,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let reason = required_text("reason", reason)?;
        let returning = self.handling_assignment(actor, directory, "returned")?;

        let mut assignments = self.assignments.clone();
        for assignment in assignments
            .iter_mut()
            .filter(|a| a.unit_id == returning.unit_id)
        {
            assignment.status = AssignmentStatus::Returned;
            assignment.note = Some(reason.clone());
            assignment.updated_at = now;
        }
        let back_to_centre = returning.lead
            || assignments
                .iter()
                .all(|a| a.status == AssignmentStatus::Returned);
        let status = if back_to_centre {
            ComplaintStatus::Accepted
        } else {
            self.status()
        };

        let mut event = self.event(
            EventKind::Returned,
            status,
            actor,
            format!("退单：{reason}"),
        );
        event.visible_to_citizen = false;
        event.unit_id = Some(returning.unit_id.clone());
        let mut change = self.change_at(status, event, now);
        if back_to_centre {
            change.after.handling.lead_unit_id = None;
        }
        change.assignments = Some(assignments);
        Ok(change)
    }

    /// A co-unit reports its part of a parallel dispatch done.
    pub fn report_part(
        &self,
        actor: &Actor,
        summary: &str,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let summary = required_text("summary", summary)?;
        let own = self.handling_assignment(actor, directory, "reported on")?;
        if own.lead {
            return Err(refuse(
                "the lead unit resolves the case instead of reporting",
            ));
        }

        let mut assignments = self.assignments.clone();
        for assignment in assignments.iter_mut().filter(|a| a.unit_id == own.unit_id) {
            assignment.status = AssignmentStatus::Reported;
            assignment.note = Some(summary.clone());
            assignment.updated_at = now;
        }
        let mut event = self.event(
            EventKind::Reported,
            ComplaintStatus::InProgress,
            actor,
            summary,
        );
        event.visible_to_citizen = false;
        event.unit_id = Some(own.unit_id);
        let mut change = self.change_at(ComplaintStatus::InProgress, event, now);
        change.assignments = Some(assignments);
        Ok(change)
    }

    /// A progress note; the first one from a unit starts the handling.
    pub fn add_note(
        &self,
        actor: &Actor,
        note: &str,
        visible_to_citizen: bool,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let note = required_text("note", note)?;
        let unit = self.handling_assignment(actor, directory, "noted")?.unit_id;

        let mut event = self.event(
            EventKind::Progress,
            ComplaintStatus::InProgress,
            actor,
            note,
        );
        event.visible_to_citizen = visible_to_citizen;
        event.unit_id = Some(unit);
        Ok(self.change_at(ComplaintStatus::InProgress, event, now))
    }

    /// The lead unit asks for more time, before the deadline.
    pub fn request_extension(
        &self,
        actor: &Actor,
        until: DateTime<Utc>,
        reason: &str,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let reason = required_text("reason", reason)?;
        let own = self.handling_assignment(actor, directory, "extended")?;
        if !own.lead {
            return Err(refuse("only the lead unit may ask for an extension"));
        }
        let deadline = self
            .complaint
            .handling
            .deadline
            .ok_or_else(|| refuse("the case has no deadline"))?;
        if now >= deadline {
            return Err(refuse("an extension must be asked for before the deadline"));
        }
        if until <= deadline {
            return Err(DomainError::invalid(
                "until",
                "must be later than the current deadline",
            ));
        }
        if self.complaint.handling.extension.is_some() {
            return Err(refuse("an extension request is already pending"));
        }

        let message = format!("申请延期至{}：{reason}", local_time(until));
        let mut event = self.event(EventKind::ExtensionRequested, self.status(), actor, message);
        event.visible_to_citizen = false;
        let mut change = self.change_at(self.status(), event, now);
        change.after.handling.extension = Some(ExtensionRequest {
            unit_id: own.unit_id,
            until,
            reason,
        });
        Ok(change)
    }

    /// A supervisor over the requesting unit approves or refuses the
    /// pending extension; an approval moves the deadline the citizen sees.
    pub fn decide_extension(
        &self,
        actor: &Actor,
        approve: bool,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let Some(request) = self.complaint.handling.extension.clone() else {
            return Err(refuse("no extension request is pending"));
        };
        let may_decide = match actor.role {
            Role::DistrictSupervisor => true,
            Role::UnitSupervisor => directory.is_within(&request.unit_id, actor.unit_id),
            _ => false,
        };
        if !may_decide {
            return Err(denied(
                "only a supervisor over the requesting unit may decide",
            ));
        }

        let status = self.status();
        let mut event = if approve {
            let message = format!("办理期限已延长至{}。", local_time(request.until));
            self.event(EventKind::DeadlineChanged, status, actor, message)
        } else {
            let mut event = self.event(
                EventKind::ExtensionRefused,
                status,
                actor,
                "延期申请未获批准".to_owned(),
            );
            event.visible_to_citizen = false;
            event
        };
        // The decision concerns the unit that asked (statistics count
        // extensions per unit), not the supervisor's.
        event.unit_id = Some(request.unit_id.clone());
        let mut change = self.change_at(status, event, now);
        change.after.handling.extension = None;
        if approve {
            change.after.handling.deadline = Some(request.until);
            change.after.handling.overdue = false;
        }
        Ok(change)
    }

    /// The lead unit resolves the case once every co-unit has reported (or
    /// returned its part). Being on time is judged against the deadline in
    /// force now.
    pub fn resolve(
        &self,
        actor: &Actor,
        summary: &str,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let summary = required_text("summary", summary)?;
        let own = self.handling_assignment(actor, directory, "resolved")?;
        if !own.lead {
            return Err(refuse(
                "only the lead unit resolves the case; report your part instead",
            ));
        }
        let waiting: Vec<&str> = self
            .assignments
            .iter()
            .filter(|a| !a.lead && a.status == AssignmentStatus::Assigned)
            .map(|a| a.unit_id.as_str())
            .collect();
        if !waiting.is_empty() {
            return Err(refuse(format!(
                "co-units have not reported yet: {}",
                waiting.join(", ")
            )));
        }

        let message = format!("诉求已办结：{summary}");
        let event = self.event(
            EventKind::Resolved,
            ComplaintStatus::Resolved,
            actor,
            message,
        );
        let mut change = self.change_at(ComplaintStatus::Resolved, event, now);
        change.after.resolution_round += 1;
        let handling = &mut change.after.handling;
        handling.resolution_summary = Some(summary);
        handling.resolved_at = Some(now);
        handling.resolved_on_time = Some(handling.deadline.is_none_or(|deadline| now <= deadline));
        Ok(change)
    }

    /// Merges this complaint into `survivor` as a duplicate (并单). It keeps
    /// its own timeline; the survivor's citizen-visible progress is copied
    /// into it from now on.
    pub fn merge_into(
        &self,
        actor: &Actor,
        survivor: &Case,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        if survivor.id() == self.id() {
            return Err(DomainError::invalid(
                "into_complaint_id",
                "a case cannot be merged into itself",
            ));
        }
        if survivor.complaint.handling.merged_into.is_some() {
            return Err(refuse(
                "the target was itself merged; merge into the case it joined",
            ));
        }
        self.expect_status(
            &[ComplaintStatus::Received, ComplaintStatus::Accepted],
            "merged",
        )?;
        let open = [
            ComplaintStatus::Received,
            ComplaintStatus::Accepted,
            ComplaintStatus::Dispatched,
            ComplaintStatus::InProgress,
        ];
        if !open.contains(&survivor.complaint.status) {
            return Err(refuse("the target case is no longer open"));
        }

        let message = "您的诉求与同一问题的其他诉求合并办理，后续进展将在此同步。".to_owned();
        let status = survivor.complaint.status;
        let event = self.event(EventKind::Merged, status, actor, message);
        let mut change = self.change_at(status, event, now);
        change.after.handling.merged_into = Some(survivor.id());
        change.after.handling.deadline = survivor.complaint.handling.deadline;
        Ok(change)
    }

    /// Formally passes first-inquiry ownership to another unit; until then
    /// the unit that first received the matter answers for it.
    pub fn hand_over(
        &self,
        actor: &Actor,
        to_unit: &str,
        reason: &str,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let reason = required_text("reason", reason)?;
        let Some(unit) = directory.get(to_unit) else {
            return Err(DomainError::invalid("to_unit_id", "no unit has this id"));
        };
        let closed = [
            ComplaintStatus::Rejected,
            ComplaintStatus::Closed,
            ComplaintStatus::Withdrawn,
        ];
        if closed.contains(&self.status()) {
            return Err(refuse("a finished case is not handed over"));
        }
        if self.complaint.handling.owner_unit_id.as_deref() == Some(to_unit) {
            return Err(refuse("the unit already owns this case"));
        }

        let message = format!("首问责任移交至{}：{reason}", unit.name_zh);
        let mut event = self.event(EventKind::HandedOver, self.status(), actor, message);
        event.visible_to_citizen = false;
        event.unit_id = Some(to_unit.to_owned());
        let mut change = self.change_at(self.status(), event, now);
        change.after.handling.owner_unit_id = Some(to_unit.to_owned());
        Ok(change)
    }

    /// Records the outcome of a telephone follow-up (电话回访).
    pub fn record_follow_up(
        &self,
        actor: &Actor,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> Result<ComplaintChange, DomainError> {
        let outcome = required_text("outcome", outcome)?;
        if self.status() == ComplaintStatus::Received {
            return Err(refuse("a case is followed up only after it is accepted"));
        }
        let mut event = self.event(EventKind::FollowUp, self.status(), actor, outcome);
        event.visible_to_citizen = false;
        Ok(self.change_at(self.status(), event, now))
    }
}

/// Checks that a dispatch names real units that take cases, none twice.
fn check_plan(
    plan: &DispatchPlan,
    directory: &Directory,
) -> Result<Vec<(String, bool)>, DomainError> {
    let mut units = vec![(plan.lead.clone(), true)];
    units.extend(plan.co_units.iter().map(|id| (id.clone(), false)));

    for (i, (id, _)) in units.iter().enumerate() {
        let field = if i == 0 {
            "lead_unit_id".to_owned()
        } else {
            format!("co_unit_ids[{}]", i - 1)
        };
        let Some(unit) = directory.get(id) else {
            return Err(DomainError::invalid(field, "no unit has this id"));
        };
        if unit.kind == UnitKind::Centre {
            return Err(DomainError::invalid(
                field,
                "the centre dispatches; choose a handling unit",
            ));
        }
        if units[..i].iter().any(|(other, _)| other == id) {
            return Err(DomainError::invalid(field, "appears twice"));
        }
    }
    Ok(units)
}

fn directory_name<'a>(directory: &'a Directory, id: &'a str) -> &'a str {
    directory.get(id).map_or(id, |unit| unit.name_zh.as_str())
}

/// A time as the citizen reads it: local, to the minute.
pub fn local_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&super::time::shanghai())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}
