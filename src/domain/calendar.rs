//! The official working-day calendar of mainland China and deadline
//! arithmetic on it. Which days are worked is data, not code: every year the
//! State Council publishes a notice (部分节假日安排) that gives weekdays off
//! and declares some weekend days working (调休), and an operator loads it.
//! Beyond the loaded years only the weekend rule is known. A deadline that
//! reaches there is still computed, because the matter needs a date now, but
//! it is marked provisional so that it can be recomputed once the notice is
//! loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::iter;

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use serde::Deserialize;

use super::category::{TimeLimit, TimeLimitUnit};
use super::time::{local_date, shanghai};

/// How a notice overrides the weekend rule on one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// A day off (放假). Notices list every day of a holiday block, the
    /// weekend days inside it included; those are kept as given.
    Off,
    /// A Saturday or Sunday declared a working day (调休上班).
    Work,
}

/// The working days of the district: the weekend rule, overridden by the
/// notice of every loaded year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCalendar {
    exceptions: BTreeMap<NaiveDate, DayKind>,
    /// Kept apart from the exceptions because a year whose notice moves no
    /// day is still official.
    official_years: BTreeSet<i32>,
}

/// The instant a time limit runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: DateTime<Utc>,
    /// True when the computation used a day of a year whose official
    /// calendar is not loaded (weekends-only rule used there).
    pub provisional: bool,
}

/// A stretch of office hours, in local time.
#[derive(Debug, Clone, Copy)]
struct OfficeWindow {
    opens: NaiveTime,
    closes: NaiveTime,
}

// Office hours are local practice and inferred: no rule fixing them for
// Pingshan was read. A summer timetable, if the district keeps one, is not
// modelled. Every working-hour limit moves with these two windows.
const MORNING_OFFICE_HOURS: OfficeWindow = OfficeWindow {
    opens: time_of_day(8, 30),
    closes: time_of_day(12, 0),
};
const AFTERNOON_OFFICE_HOURS: OfficeWindow = OfficeWindow {
    opens: time_of_day(14, 0),
    closes: time_of_day(18, 0),
};
const OFFICE_HOURS: [OfficeWindow; 2] = [MORNING_OFFICE_HOURS, AFTERNOON_OFFICE_HOURS];

/// Days a deadline search may walk per unit of the limit, plus a fixed
/// allowance. The notices have about five working days a week and no rest
/// longer than nine days in a row, so a real search ends long before this;
/// the bound only stops a calendar whose loaded years are nearly all off
/// days from walking on towards the end of time.
const SEARCH_DAYS_PER_UNIT: u64 = 7;
const SEARCH_EXTRA_DAYS: u64 = 400;

const fn time_of_day(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("office hours are valid times of day")
}

impl WorkCalendar {
    /// The 2025 and 2026 notices shipped with the server.
    pub fn bundled() -> WorkCalendar {
        Self::from_json(include_str!("../../reference/cn-holidays.json"))
            .expect("the bundled holiday calendar is valid")
    }

    /// Reads the holiday file: for each year, every day off and every
    /// weekend day declared working.
    pub fn from_json(text: &str) -> anyhow::Result<WorkCalendar> {
        let file: FileFormat =
            serde_json::from_str(text).context("Failed to parse the holiday calendar")?;

        let mut calendar = WorkCalendar::empty();
        for (key, notice) in file.years {
            let year: i32 = key
                .parse()
                .with_context(|| format!("the key {key:?} is not a year"))?;
            ensure!(
                !calendar.official_years.contains(&year),
                "year {year} appears twice"
            );

            calendar
                .load_year(year, notice.exceptions())
                .with_context(|| format!("Failed to load the notice for {year}"))?;
        }
        Ok(calendar)
    }

    /// Rebuilds a calendar from its parts, as stored by [`Self::official_years`]
    /// and [`Self::exceptions`].
    pub fn new(
        official_years: impl IntoIterator<Item = i32>,
        exceptions: impl IntoIterator<Item = (NaiveDate, DayKind)>,
    ) -> anyhow::Result<WorkCalendar> {
        let official_years: BTreeSet<i32> = official_years.into_iter().collect();
        for year in &official_years {
            check_year(*year)?;
        }

        let exceptions = collect_exceptions(exceptions)?;
        let unofficial = exceptions
            .keys()
            .find(|d| !official_years.contains(&d.year()));
        if let Some(date) = unofficial {
            bail!("{date} is listed, but no notice for its year is loaded");
        }
        Ok(WorkCalendar {
            exceptions,
            official_years,
        })
    }

    fn empty() -> WorkCalendar {
        WorkCalendar {
            exceptions: BTreeMap::new(),
            official_years: BTreeSet::new(),
        }
    }

    pub fn official_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.official_years.iter().copied()
    }

    pub fn exceptions(&self) -> impl Iterator<Item = (NaiveDate, DayKind)> + '_ {
        self.exceptions.iter().map(|(date, kind)| (*date, *kind))
    }

    /// Merges another year's notice (replacing that year's exceptions), as
    /// when an operator loads next year. On error the calendar is unchanged.
    pub fn load_year(
        &mut self,
        year: i32,
        exceptions: impl IntoIterator<Item = (NaiveDate, DayKind)>,
    ) -> anyhow::Result<()> {
        check_year(year)?;
        let notice = collect_exceptions(exceptions)?;
        if let Some(date) = notice.keys().find(|d| d.year() != year) {
            bail!("{date} is not in {year}");
        }

        self.exceptions.retain(|date, _| date.year() != year);
        self.exceptions.extend(notice);
        self.official_years.insert(year);
        Ok(())
    }

    /// Whether the notice for this date's year is loaded.
    pub fn is_official(&self, date: NaiveDate) -> bool {
        self.official_years.contains(&date.year())
    }

    /// The notice decides inside the loaded years; elsewhere only the weekend
    /// rule is known, so an unannounced holiday there counts as working.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.exceptions.get(&date) {
            Some(DayKind::Off) => false,
            Some(DayKind::Work) => true,
            None => !is_weekend(date),
        }
    }

    /// The last day covered by an official notice (Dec 31 of the last loaded
    /// year), None when empty.
    pub fn covered_until(&self) -> Option<NaiveDate> {
        let last = self.official_years.last()?;
        NaiveDate::from_ymd_opt(*last, 12, 31)
    }

    /// True when the official calendar ends within `days` days after `today`,
    /// so that deadlines reaching that far would be provisional and operators
    /// must load the next notice. A year missing between two loaded ones
    /// counts as an end too, and so does a `today` that is not covered.
    pub fn runs_out_within(&self, today: NaiveDate, days: u32) -> bool {
        let Some(horizon) = today.checked_add_days(Days::new(days.into())) else {
            return true;
        };
        (today.year()..=horizon.year()).any(|year| !self.official_years.contains(&year))
    }

    /// When `limit` runs out for a matter received at `start`.
    ///
    /// - Hours run on the clock, through nights and rest days alike, so the
    ///   deadline is `start` plus the hours and is never provisional.
    /// - Working days are counted from the local day after receipt: the day
    ///   a matter arrives never counts, whatever the hour, and one received
    ///   on a rest day is counted the same way, from the next day. The limit
    ///   runs out when its last working day ends, at the following local
    ///   midnight.
    /// - Working hours are office time on working days, 08:30–12:00 and
    ///   14:00–18:00 local. Received outside office time, a matter waits for
    ///   the next opening; the limit runs out at the instant its last minute
    ///   of office time is used, which may be a closing time.
    ///
    /// A limit of zero runs out at `start`. A search that reaches the bound
    /// of `value` × 7 + 400 days, which only a calendar with almost no
    /// working days can do, gives up: it returns the end of the last day it
    /// examined, marked provisional because it is not a real deadline.
    pub fn deadline(&self, start: DateTime<Utc>, limit: TimeLimit) -> Deadline {
        if limit.value == 0 {
            return Deadline {
                at: start,
                provisional: false,
            };
        }
        match limit.unit {
            TimeLimitUnit::Hours => Deadline {
                at: start
                    .checked_add_signed(TimeDelta::hours(limit.value.into()))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
                provisional: false,
            },
            TimeLimitUnit::WorkingDays => self.working_days_deadline(start, limit.value),
            TimeLimitUnit::WorkingHours => self.working_hours_deadline(start, limit.value),
        }
    }

    fn working_days_deadline(&self, start: DateTime<Utc>, count: u32) -> Deadline {
        let received = local_date(start);
        let mut last_examined = received;
        let mut provisional = false;
        let mut counted = 0;

        for day in days_from(received.succ_opt()).take(search_length(count)) {
            last_examined = day;
            provisional |= !self.is_official(day);
            if !self.is_working_day(day) {
                continue;
            }
            counted += 1;
            if counted == count {
                return Deadline {
                    at: end_of_day(day),
                    provisional,
                };
            }
        }
        gave_up(last_examined)
    }

    fn working_hours_deadline(&self, start: DateTime<Utc>, hours: u32) -> Deadline {
        let received = start.with_timezone(&shanghai()).naive_local();
        let mut remaining = TimeDelta::hours(hours.into());
        let mut last_examined = received.date();
        let mut provisional = false;

        for day in days_from(Some(received.date())).take(search_length(hours)) {
            last_examined = day;
            // A day whose office hours ended before the matter arrived cannot
            // move the deadline, so whether its year is loaded does not matter.
            if office_time(day, received).next().is_none() {
                continue;
            }
            provisional |= !self.is_official(day);
            if !self.is_working_day(day) {
                continue;
            }
            if let Some(end) = spend_office_time(day, received, &mut remaining) {
                return Deadline {
                    at: utc_instant(end),
                    provisional,
                };
            }
        }
        gave_up(last_examined)
    }
}

/// Takes `remaining` office time from `day`, returning the local instant it
/// runs out if that happens on this day.
fn spend_office_time(
    day: NaiveDate,
    received: NaiveDateTime,
    remaining: &mut TimeDelta,
) -> Option<NaiveDateTime> {
    for (opens, closes) in office_time(day, received) {
        let open_for = closes - opens;
        if *remaining <= open_for {
            return Some(opens + *remaining);
        }
        *remaining -= open_for;
    }
    None
}

/// Refuses years whose first or last day chrono cannot represent, so that
/// every loaded year has a `covered_until`.
fn check_year(year: i32) -> anyhow::Result<()> {
    let first = NaiveDate::from_ymd_opt(year, 1, 1);
    let last = NaiveDate::from_ymd_opt(year, 12, 31);
    ensure!(
        first.is_some() && last.is_some(),
        "year {year} is out of range"
    );
    Ok(())
}

/// Checks the rules every notice keeps: only a weekend day can be made a
/// working day, and no date is both off and working.
fn collect_exceptions(
    exceptions: impl IntoIterator<Item = (NaiveDate, DayKind)>,
) -> anyhow::Result<BTreeMap<NaiveDate, DayKind>> {
    let mut collected = BTreeMap::new();
    for (date, kind) in exceptions {
        if kind == DayKind::Work && !is_weekend(date) {
            bail!("{date} is a weekday, so it cannot be an adjusted working day");
        }
        if collected
            .insert(date, kind)
            .is_some_and(|earlier| earlier != kind)
        {
            bail!("{date} is listed both as off and as working");
        }
    }
    Ok(collected)
}

fn is_weekend(date: NaiveDate) -> bool {
    date.weekday().number_from_monday() > 5
}

fn days_from(first: Option<NaiveDate>) -> impl Iterator<Item = NaiveDate> {
    iter::successors(first, |day| day.succ_opt())
}

fn search_length(value: u32) -> usize {
    let days = u64::from(value) * SEARCH_DAYS_PER_UNIT + SEARCH_EXTRA_DAYS;
    usize::try_from(days).unwrap_or(usize::MAX)
}

/// The office windows of `day` that are still open at or after `received`,
/// as local (opening, closing) pairs.
fn office_time(
    day: NaiveDate,
    received: NaiveDateTime,
) -> impl Iterator<Item = (NaiveDateTime, NaiveDateTime)> {
    OFFICE_HOURS.into_iter().filter_map(move |window| {
        let opens = day.and_time(window.opens).max(received);
        let closes = day.and_time(window.closes);
        (opens < closes).then_some((opens, closes))
    })
}

/// The local midnight that ends `day`, in UTC.
fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
    match day.succ_opt() {
        Some(next) => utc_instant(next.and_time(NaiveTime::MIN)),
        None => DateTime::<Utc>::MAX_UTC,
    }
}

/// Callers pass only local times at or after a matter's receipt, which is a
/// real instant, so the conversion cannot fall off the start of chrono's range.
fn utc_instant(local: NaiveDateTime) -> DateTime<Utc> {
    local
        .and_local_timezone(shanghai())
        .single()
        .expect("a fixed offset gives each local time after receipt one instant")
        .to_utc()
}

fn gave_up(last_examined: NaiveDate) -> Deadline {
    Deadline {
        at: end_of_day(last_examined),
        provisional: true,
    }
}

/// The file's shape; only the flat per-year lists are read, not the
/// per-holiday breakdown.
#[derive(Deserialize)]
struct FileFormat {
    years: BTreeMap<String, FileYear>,
}

#[derive(Deserialize)]
struct FileYear {
    all_off_days: Vec<NaiveDate>,
    all_adjusted_working_days: Vec<NaiveDate>,
}

impl FileYear {
    fn exceptions(self) -> impl Iterator<Item = (NaiveDate, DayKind)> {
        let off = self.all_off_days.into_iter().map(|d| (d, DayKind::Off));
        let work = self.all_adjusted_working_days.into_iter();
        off.chain(work.map(|d| (d, DayKind::Work)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{TimeZone, Weekday};

    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn local(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        shanghai()
            .with_ymd_and_hms(year, month, day, hour, minute, 0)
            .unwrap()
            .to_utc()
    }

    fn limit(value: u32, unit: TimeLimitUnit) -> TimeLimit {
        TimeLimit {
            value,
            unit,
            inferred: false,
        }
    }

    fn working_days(value: u32) -> TimeLimit {
        limit(value, TimeLimitUnit::WorkingDays)
    }

    fn working_hours(value: u32) -> TimeLimit {
        limit(value, TimeLimitUnit::WorkingHours)
    }

    /// Whether a day is worked, read straight from the bundled file and the
    /// weekday, so that the property checks do not rely on the calendar's
    /// own lookup.
    fn working_day_oracle() -> impl Fn(NaiveDate) -> bool {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../../reference/cn-holidays.json")).unwrap();
        let dates = |list: &str| -> HashSet<NaiveDate> {
            ["2025", "2026"]
                .iter()
                .flat_map(|year| file["years"][year][list].as_array().unwrap())
                .map(|value| value.as_str().unwrap().parse().unwrap())
                .collect()
        };
        let off = dates("all_off_days");
        let work = dates("all_adjusted_working_days");
        move |day| {
            let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
            work.contains(&day) || (!weekend && !off.contains(&day))
        }
    }

    fn holiday_file(year: &str, off: &[&str], work: &[&str]) -> String {
        serde_json::json!({
            "years": { year: { "all_off_days": off, "all_adjusted_working_days": work } }
        })
        .to_string()
    }

    #[test]
    fn the_bundled_calendar_holds_both_notices() {
        let calendar = WorkCalendar::bundled();
        let count = |kind| calendar.exceptions().filter(|(_, k)| *k == kind).count();

        assert_eq!(calendar.official_years().collect::<Vec<_>>(), [2025, 2026]);
        assert_eq!(count(DayKind::Off), 28 + 33);
        assert_eq!(count(DayKind::Work), 5 + 6);
        assert_eq!(calendar.covered_until(), Some(date(2026, 12, 31)));
    }

    #[test]
    fn the_national_day_block_of_2025_is_off_and_its_weekends_are_worked() {
        let calendar = WorkCalendar::bundled();

        assert!(!calendar.is_working_day(date(2025, 10, 8)));
        assert!(calendar.is_working_day(date(2025, 10, 9)));
        assert!(calendar.is_working_day(date(2025, 9, 28)));
        assert!(calendar.is_working_day(date(2025, 10, 11)));
        assert!(!calendar.is_working_day(date(2025, 10, 12)));
    }

    #[test]
    fn one_working_day_before_national_day_ends_after_the_block() {
        let calendar = WorkCalendar::bundled();

        let deadline = calendar.deadline(local(2025, 9, 30, 10, 0), working_days(1));

        assert_eq!(deadline.at, local(2025, 10, 10, 0, 0));
        assert!(!deadline.provisional);
    }

    #[test]
    fn a_make_up_sunday_counts_as_a_working_day() {
        let calendar = WorkCalendar::bundled();

        let deadline = calendar.deadline(local(2025, 9, 26, 15, 0), working_days(1));

        assert_eq!(deadline.at, local(2025, 9, 29, 0, 0));
    }

    #[test]
    fn a_weekday_holiday_does_not_count() {
        let calendar = WorkCalendar::bundled();

        // 2025-01-01 is a Wednesday off; the first day counted is Thursday.
        let new_year = calendar.deadline(local(2024, 12, 31, 10, 0), working_days(1));
        // Labour Day takes Thursday 05-01 to Monday 05-05.
        let labour_day = calendar.deadline(local(2025, 4, 30, 10, 0), working_days(1));

        assert_eq!(new_year.at, local(2025, 1, 3, 0, 0));
        assert!(!new_year.provisional, "only days of 2025 were examined");
        assert_eq!(labour_day.at, local(2025, 5, 7, 0, 0));
    }

    #[test]
    fn the_spring_festival_blocks_come_from_the_notices() {
        let calendar = WorkCalendar::bundled();

        // 2025: off 01-28 to 02-04. 2026: Saturday 02-14 worked, off 02-15 to 02-23.
        let in_2025 = calendar.deadline(local(2025, 1, 27, 9, 0), working_days(1));
        let before_2026 = calendar.deadline(local(2026, 2, 13, 9, 0), working_days(1));
        let across_2026 = calendar.deadline(local(2026, 2, 13, 9, 0), working_days(2));

        assert_eq!(in_2025.at, local(2025, 2, 6, 0, 0));
        assert_eq!(before_2026.at, local(2026, 2, 15, 0, 0));
        assert_eq!(across_2026.at, local(2026, 2, 25, 0, 0));
    }

    #[test]
    fn the_day_of_receipt_never_counts_and_follows_the_district_clock() {
        let calendar = WorkCalendar::bundled();

        let saturday = calendar.deadline(local(2025, 3, 8, 10, 0), working_days(1));
        let monday_dawn = calendar.deadline(local(2025, 3, 10, 0, 5), working_days(1));
        // 16:30 UTC on Monday is already Tuesday in the district.
        let monday_utc_evening = Utc.with_ymd_and_hms(2025, 3, 10, 16, 30, 0).unwrap();
        let tuesday = calendar.deadline(monday_utc_evening, working_days(1));

        assert_eq!(saturday.at, local(2025, 3, 11, 0, 0));
        assert_eq!(monday_dawn.at, local(2025, 3, 12, 0, 0));
        assert_eq!(tuesday.at, local(2025, 3, 13, 0, 0));
    }

    #[test]
    fn every_working_day_deadline_of_2025_and_2026_counts_exactly_its_limit() {
        let calendar = WorkCalendar::bundled();
        let is_working = working_day_oracle();
        let received_dates = date(2025, 1, 1)
            .iter_days()
            .take_while(|d| d.year() <= 2026);

        for received in received_dates {
            for (hour, minute) in [(0, 0), (8, 59), (12, 30), (23, 59)] {
                let start = local(
                    received.year(),
                    received.month(),
                    received.day(),
                    hour,
                    minute,
                );
                let mut previous = start;
                for n in 1..=15 {
                    let deadline = calendar.deadline(start, working_days(n));
                    let at = deadline.at.with_timezone(&shanghai());
                    let last_day = at.date_naive().pred_opt().unwrap();
                    let counted = received
                        .iter_days()
                        .skip(1)
                        .take_while(|d| *d <= last_day)
                        .filter(|d| is_working(*d))
                        .count();

                    let case = format!("{n} working days from {start}");
                    assert_eq!(at.time(), NaiveTime::MIN, "{case}: not at midnight");
                    assert!(is_working(last_day), "{case}: ends after a rest day");
                    assert_eq!(counted, n as usize, "{case}: wrong count");
                    assert!(deadline.at > previous, "{case}: not later than n - 1");
                    assert_eq!(deadline.provisional, last_day.year() == 2027, "{case}");
                    previous = deadline.at;
                }
            }
        }
    }

    #[test]
    fn a_deadline_that_reaches_an_unloaded_year_is_provisional() {
        let calendar = WorkCalendar::bundled();

        let into_2027 = calendar.deadline(local(2026, 12, 30, 10, 0), working_days(3));
        let ends_at_new_year = calendar.deadline(local(2026, 12, 30, 10, 0), working_days(1));

        // 2027-01-01 counts under the weekend rule alone.
        assert_eq!(into_2027.at, local(2027, 1, 5, 0, 0));
        assert!(into_2027.provisional);
        assert_eq!(ends_at_new_year.at, local(2027, 1, 1, 0, 0));
        assert!(!ends_at_new_year.provisional, "no day of 2027 was used");
    }

    #[test]
    fn loading_the_next_year_makes_a_provisional_deadline_official() {
        let mut calendar = WorkCalendar::bundled();
        let start = local(2026, 12, 30, 10, 0);
        // A made-up notice for the test, not the real 2027 arrangement.
        let notice_2027 = [(date(2027, 1, 1), DayKind::Off)];

        calendar.load_year(2027, notice_2027).unwrap();
        let deadline = calendar.deadline(start, working_days(3));

        assert_eq!(deadline.at, local(2027, 1, 6, 0, 0));
        assert!(!deadline.provisional);
        assert_eq!(calendar.covered_until(), Some(date(2027, 12, 31)));
    }

    #[test]
    fn loading_a_year_again_replaces_only_that_years_exceptions() {
        let mut calendar = WorkCalendar::bundled();
        let exceptions_in = |calendar: &WorkCalendar, year| {
            calendar
                .exceptions()
                .filter(|(d, _)| d.year() == year)
                .count()
        };

        calendar
            .load_year(2025, [(date(2025, 3, 3), DayKind::Off)])
            .unwrap();

        assert_eq!(exceptions_in(&calendar, 2025), 1);
        assert_eq!(exceptions_in(&calendar, 2026), 39);
        assert!(calendar.is_working_day(date(2025, 10, 1)));
        assert!(!calendar.is_working_day(date(2025, 3, 3)));
        assert!(!calendar.is_working_day(date(2025, 10, 11)));
        assert!(!calendar.is_working_day(date(2026, 10, 1)));
    }

    #[test]
    fn a_refused_notice_leaves_the_calendar_unchanged() {
        let mut calendar = WorkCalendar::bundled();

        let error = calendar
            .load_year(2025, [(date(2026, 3, 3), DayKind::Off)])
            .unwrap_err();

        assert!(error.to_string().contains("not in 2025"), "{error}");
        assert_eq!(calendar, WorkCalendar::bundled());
    }

    #[test]
    fn a_calendar_rebuilt_from_its_parts_is_equal() {
        let calendar = WorkCalendar::bundled();

        let rebuilt = WorkCalendar::new(calendar.official_years(), calendar.exceptions()).unwrap();

        assert_eq!(rebuilt, calendar);
    }

    #[test]
    fn new_refuses_an_exception_outside_the_official_years() {
        let error = WorkCalendar::new([2025], [(date(2026, 1, 1), DayKind::Off)]).unwrap_err();

        assert!(error.to_string().contains("2026"), "{error}");
    }

    #[test]
    fn working_hours_skip_lunch_and_closed_hours() {
        let calendar = WorkCalendar::bundled();
        let wednesday = |hour, minute| local(2025, 3, 12, hour, minute);

        let from_ten = calendar.deadline(wednesday(10, 0), working_hours(4));
        let from_lunch = calendar.deadline(wednesday(12, 30), working_hours(1));
        let from_dawn = calendar.deadline(wednesday(7, 0), working_hours(1));
        let to_noon = calendar.deadline(wednesday(8, 30), working_hours(3));
        let whole_day = calendar.deadline(wednesday(8, 30), working_hours(7));

        // Two hours before lunch, then two from the 14:00 opening.
        assert_eq!(from_ten.at, wednesday(16, 0));
        assert!(!from_ten.provisional);
        assert_eq!(from_lunch.at, wednesday(15, 0));
        assert_eq!(from_dawn.at, wednesday(9, 30));
        assert_eq!(to_noon.at, wednesday(11, 30));
        assert_eq!(whole_day.at, wednesday(17, 30));
    }

    #[test]
    fn a_limit_that_fills_a_window_ends_at_its_closing() {
        let calendar = WorkCalendar::bundled();

        let deadline = calendar.deadline(local(2025, 3, 12, 14, 0), working_hours(4));

        assert_eq!(deadline.at, local(2025, 3, 12, 18, 0));
    }

    #[test]
    fn working_hours_carry_over_a_weekend() {
        let calendar = WorkCalendar::bundled();
        let december_2026 = |d: &NaiveDate| d.year() == 2026 && d.month() == 12;
        assert!(!calendar.exceptions().any(|(d, _)| december_2026(&d)));

        let deadline = calendar.deadline(local(2026, 12, 4, 17, 0), working_hours(2));

        assert_eq!(deadline.at, local(2026, 12, 7, 9, 30));
    }

    #[test]
    fn working_hours_wait_out_a_holiday_and_use_make_up_days() {
        let calendar = WorkCalendar::bundled();

        let from_holiday = calendar.deadline(local(2025, 10, 3, 10, 0), working_hours(1));
        let to_sunday = calendar.deadline(local(2025, 9, 27, 10, 0), working_hours(1));

        assert_eq!(from_holiday.at, local(2025, 10, 9, 9, 30));
        assert_eq!(to_sunday.at, local(2025, 9, 28, 9, 30));
    }

    #[test]
    fn working_hours_in_an_unloaded_year_are_provisional() {
        let calendar = WorkCalendar::bundled();

        let deadline = calendar.deadline(local(2026, 12, 31, 17, 0), working_hours(2));
        // The evening of 2024-12-31 has no office time left to depend on.
        let after_hours = calendar.deadline(local(2024, 12, 31, 19, 0), working_hours(1));
        let in_office = calendar.deadline(local(2024, 12, 31, 17, 30), working_hours(1));

        assert_eq!(deadline.at, local(2027, 1, 1, 9, 30));
        assert!(deadline.provisional);
        assert_eq!(after_hours.at, local(2025, 1, 2, 9, 30));
        assert!(!after_hours.provisional);
        assert_eq!(in_office.at, local(2025, 1, 2, 9, 0));
        assert!(in_office.provisional);
    }

    #[test]
    fn clock_hours_are_plain_addition() {
        let calendar = WorkCalendar::bundled();
        let six_hours = limit(6, TimeLimitUnit::Hours);

        let friday_night = calendar.deadline(local(2025, 3, 7, 22, 0), six_hours);
        let on_holiday = calendar.deadline(local(2025, 10, 1, 20, 0), six_hours);
        let unloaded = calendar.deadline(local(2030, 1, 1, 0, 0), six_hours);

        assert_eq!(friday_night.at, local(2025, 3, 8, 4, 0));
        assert_eq!(on_holiday.at, local(2025, 10, 2, 2, 0));
        assert!(!friday_night.provisional && !unloaded.provisional);
    }

    #[test]
    fn a_limit_of_zero_runs_out_at_once() {
        let calendar = WorkCalendar::bundled();
        let saturday = local(2025, 3, 8, 3, 0);
        let units = [
            TimeLimitUnit::Hours,
            TimeLimitUnit::WorkingDays,
            TimeLimitUnit::WorkingHours,
        ];

        for unit in units {
            assert_eq!(calendar.deadline(saturday, limit(0, unit)).at, saturday);
        }
    }

    #[test]
    fn a_huge_limit_ends_far_out_and_provisional() {
        let calendar = WorkCalendar::bundled();

        let deadline = calendar.deadline(local(2025, 1, 1, 9, 0), working_days(100_000));

        // Counted separately with a script over the same file: the 100,000th
        // working day is 2408-05-28, about 383 years on at five days a week.
        assert_eq!(deadline.at, local(2408, 5, 29, 0, 0));
        assert!(deadline.provisional);
    }

    #[test]
    fn a_calendar_with_no_working_days_gives_up_at_the_bound() {
        // Two whole years off, longer than the bound for one working day.
        let every_day = date(2025, 1, 1)
            .iter_days()
            .take_while(|d| d.year() <= 2026);
        let off = every_day.map(|d| (d, DayKind::Off));
        let calendar = WorkCalendar::new([2025, 2026], off).unwrap();

        let deadline = calendar.deadline(local(2025, 1, 1, 9, 0), working_days(1));

        // The documented bound for one unit: 1 × 7 + 400 days.
        let last_examined = date(2025, 1, 1) + Days::new(407);
        assert_eq!(deadline.at, end_of_day(last_examined));
        assert!(deadline.provisional);
    }

    #[test]
    fn operators_are_warned_before_the_calendar_runs_out() {
        let calendar = WorkCalendar::bundled();
        let with_gap = WorkCalendar::new([2025, 2027], []).unwrap();
        let empty = WorkCalendar::new([], []).unwrap();

        assert!(calendar.runs_out_within(date(2026, 11, 15), 60));
        assert!(!calendar.runs_out_within(date(2026, 6, 1), 60));
        assert!(!calendar.runs_out_within(date(2026, 12, 1), 30));
        assert!(with_gap.runs_out_within(date(2025, 12, 1), 60));
        assert!(empty.runs_out_within(date(2026, 6, 1), 1));
        assert_eq!(empty.covered_until(), None);
    }

    #[test]
    fn a_minimal_file_loads() {
        let text = holiday_file("2030", &["2030-01-01"], &["2030-01-05"]);

        let calendar = WorkCalendar::from_json(&text).unwrap();

        assert!(!calendar.is_working_day(date(2030, 1, 1)));
        assert!(calendar.is_working_day(date(2030, 1, 5)));
        assert!(calendar.is_official(date(2030, 6, 1)));
    }

    #[test]
    fn a_weekday_cannot_be_an_adjusted_working_day() {
        let text = holiday_file("2025", &[], &["2025-10-09"]);

        let error = WorkCalendar::from_json(&text).unwrap_err();

        assert!(
            format!("{error:#}").contains("2025-10-09 is a weekday"),
            "{error:#}"
        );
    }

    #[test]
    fn a_date_cannot_be_both_off_and_working() {
        let text = holiday_file("2025", &["2025-10-11"], &["2025-10-11"]);

        let error = WorkCalendar::from_json(&text).unwrap_err();

        assert!(
            format!("{error:#}").contains("both as off and as working"),
            "{error:#}"
        );
    }

    #[test]
    fn a_date_must_lie_in_its_years_key() {
        let text = holiday_file("2025", &["2026-01-01"], &[]);

        let error = WorkCalendar::from_json(&text).unwrap_err();

        assert!(format!("{error:#}").contains("not in 2025"), "{error:#}");
    }

    #[test]
    fn a_year_key_must_name_one_year_once() {
        let not_a_year = holiday_file("next", &[], &[]);
        let empty_year = r#"{"all_off_days": [], "all_adjusted_working_days": []}"#;
        let twice = format!(r#"{{"years": {{"2025": {empty_year}, "02025": {empty_year}}}}}"#);

        let not_a_year = WorkCalendar::from_json(&not_a_year).unwrap_err();
        let twice = WorkCalendar::from_json(&twice).unwrap_err();

        assert!(
            format!("{not_a_year:#}").contains("not a year"),
            "{not_a_year:#}"
        );
        assert!(
            format!("{twice:#}").contains("2025 appears twice"),
            "{twice:#}"
        );
    }
}
