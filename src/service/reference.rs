//! The directory and the working-day calendar: kept in the database (the
//! bundled defaults seed an empty one), cached in memory for deadline
//! arithmetic and scope checks, and maintained by system administrators.

use std::sync::Arc;

use anyhow::Context;
use chrono::{Datelike, NaiveDate};

use super::Services;
use crate::domain::account::{Account, Principal};
use crate::domain::audit::{AuditAction, AuditDraft, account_target};
use crate::domain::calendar::{DayKind, WorkCalendar};
use crate::domain::complaint::ComplaintStatus;
use crate::domain::directory::{Directory, Unit, UnitKind};
use crate::domain::error::DomainError;
use crate::domain::time::local_date;

/// How far ahead operators are warned that the holiday calendar ends.
pub const CALENDAR_WARNING_DAYS: u32 = 60;

/// The reference data one request works with, replaced as a whole.
#[derive(Debug)]
pub struct Reference {
    pub directory: Directory,
    pub calendar: WorkCalendar,
}

impl Reference {
    pub fn bundled() -> Reference {
        Reference {
            directory: Directory::bundled(),
            calendar: WorkCalendar::bundled(),
        }
    }
}

impl Services {
    pub fn reference(&self) -> Arc<Reference> {
        Arc::clone(&self.reference.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn replace_reference(&self, reference: Reference) {
        *self.reference.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reference);
    }

    /// Loads the directory and calendar from the store, seeding an empty
    /// store with the bundled defaults first.
    pub async fn load_reference(&self) -> anyhow::Result<()> {
        let now = self.clock.now();
        let mut units = self.store.units().await?;
        if units.is_empty() {
            let bundled = parents_first(Directory::bundled().units().to_vec());
            self.store.save_units(&bundled, now).await?;
            units = bundled;
        }
        let (mut years, mut exceptions) = self.store.calendar().await?;
        if years.is_empty() {
            let bundled = WorkCalendar::bundled();
            for year in bundled.official_years().collect::<Vec<_>>() {
                let of_year: Vec<_> = bundled
                    .exceptions()
                    .filter(|(day, _)| day.year() == year)
                    .collect();
                self.store.save_calendar_year(year, &of_year, now).await?;
            }
            (years, exceptions) = self.store.calendar().await?;
        }

        let directory = Directory::from_units(units).context("The stored directory is invalid")?;
        let calendar =
            WorkCalendar::new(years, exceptions).context("The stored calendar is invalid")?;
        self.replace_reference(Reference {
            directory,
            calendar,
        });
        Ok(())
    }

    /// Logs a warning when the holiday calendar runs out within
    /// `CALENDAR_WARNING_DAYS`; returns whether it does.
    pub fn warn_if_calendar_runs_out(&self) -> bool {
        let reference = self.reference();
        let runs_out = reference
            .calendar
            .runs_out_within(local_date(self.clock.now()), CALENDAR_WARNING_DAYS);
        if runs_out {
            tracing::warn!(
                covered_until = ?reference.calendar.covered_until(),
                "the holiday calendar runs out soon: load next year's official notice"
            );
        }
        runs_out
    }

    /// Adds or changes a unit, keeping the directory one valid tree.
    pub async fn save_unit(&self, actor: &Principal, unit: Unit) -> Result<Unit, DomainError> {
        if matches!(unit.kind, UnitKind::Centre | UnitKind::Fallback)
            && self
                .reference()
                .directory
                .get(&unit.id)
                .is_none_or(|u| u.kind != unit.kind)
        {
            return Err(DomainError::invalid(
                "unit.kind",
                "there is exactly one centre and one fallback unit",
            ));
        }
        let mut units: Vec<Unit> = self.reference().directory.units().to_vec();
        units.retain(|u| u.id != unit.id);
        units.push(unit.clone());
        Directory::from_units(units)
            .map_err(|error| DomainError::invalid("unit", format!("{error:#}")))?;

        let audit = AuditDraft::by(
            actor,
            AuditAction::UnitSaved,
            format!("unit:{}", unit.id),
            self.clock.now(),
        )
        .detail(format!(
            "kind {}, parent {}",
            unit.kind.as_str(),
            unit.parent_id.as_deref().unwrap_or("-")
        ));
        self.store.save_unit_audited(&unit, &audit).await?;
        self.load_reference().await?;
        Ok(unit)
    }

    /// Moves a staff member to another unit or role.
    pub async fn save_staff_member(
        &self,
        actor: &Principal,
        account: Account,
    ) -> Result<Account, DomainError> {
        if !account.role.is_staff() {
            return Err(DomainError::invalid("role", "must be a staff role"));
        }
        let unit = account.unit_id.as_deref().unwrap_or_default();
        if self.reference().directory.get(unit).is_none() {
            return Err(DomainError::invalid("unit_id", "no unit has this id"));
        }
        let audit = AuditDraft::by(
            actor,
            AuditAction::StaffMoved,
            account_target(account.id),
            self.clock.now(),
        )
        .detail(format!("role {}, unit {unit}", account.role.as_str()));
        let saved = self.store.update_staff_audited(&account, &audit).await?;
        saved.ok_or(DomainError::NotFound("staff member"))
    }

    /// Loads one year's official notice and recomputes the provisional
    /// deadlines of open cases with it.
    pub async fn load_calendar_year(
        &self,
        actor: &Principal,
        year: i32,
        off_days: &[String],
        working_days: &[String],
    ) -> Result<(), DomainError> {
        let exceptions = parse_days(year, off_days, DayKind::Off, "off_days")?
            .into_iter()
            .chain(parse_days(
                year,
                working_days,
                DayKind::Work,
                "working_days",
            )?)
            .collect::<Vec<_>>();
        let mut candidate = self.reference().calendar.clone();
        candidate
            .load_year(year, exceptions.clone())
            .map_err(|error| DomainError::invalid("year", format!("{error:#}")))?;

        let audit = AuditDraft::by(
            actor,
            AuditAction::CalendarLoaded,
            format!("calendar:{year}"),
            self.clock.now(),
        )
        .detail(format!(
            "{} off days, {} working days",
            off_days.len(),
            working_days.len()
        ));
        self.store
            .save_calendar_year_audited(year, &exceptions, &audit)
            .await?;
        self.load_reference().await?;
        self.recompute_provisional_deadlines().await?;
        tracing::info!(year, "holiday calendar year loaded");
        Ok(())
    }

    async fn recompute_provisional_deadlines(&self) -> Result<(), DomainError> {
        let reference = self.reference();
        let mut updates = Vec::new();
        for complaint in self.store.supervised_cases().await? {
            let handling = &complaint.handling;
            let open = matches!(
                complaint.status,
                ComplaintStatus::Dispatched | ComplaintStatus::InProgress
            );
            let (Some(accepted_at), true, true) =
                (handling.accepted_at, handling.deadline_provisional, open)
            else {
                continue;
            };
            let Some(limit) = self
                .standard
                .get(&complaint.category_code)
                .and_then(|c| c.time_limit)
            else {
                continue;
            };
            let deadline = reference.calendar.deadline(accepted_at, limit);
            updates.push((complaint.id, deadline.at, deadline.provisional));
        }
        self.store.update_deadlines(&updates).await?;
        Ok(())
    }
}

fn parse_days(
    year: i32,
    days: &[String],
    kind: DayKind,
    field: &str,
) -> Result<Vec<(NaiveDate, DayKind)>, DomainError> {
    days.iter()
        .enumerate()
        .map(
            |(i, text)| match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(day) if day.year() == year => Ok((day, kind)),
                Ok(_) => Err(DomainError::invalid(
                    format!("{field}[{i}]"),
                    "falls outside the year",
                )),
                Err(_) => Err(DomainError::invalid(
                    format!("{field}[{i}]"),
                    "must be a yyyy-mm-dd date",
                )),
            },
        )
        .collect()
}

/// Orders units so that each comes after its parent, as foreign keys need.
fn parents_first(mut units: Vec<Unit>) -> Vec<Unit> {
    let mut ordered: Vec<Unit> = Vec::with_capacity(units.len());
    while !units.is_empty() {
        let before = units.len();
        let (ready, waiting): (Vec<Unit>, Vec<Unit>) = units.into_iter().partition(|unit| {
            unit.parent_id
                .as_ref()
                .is_none_or(|parent| ordered.iter().any(|placed| &placed.id == parent))
        });
        ordered.extend(ready);
        units = waiting;
        if units.len() == before {
            // A unit whose parent is missing: let the store's constraint say so.
            ordered.extend(units);
            break;
        }
    }
    ordered
}
