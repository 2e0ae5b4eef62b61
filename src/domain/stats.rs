//! The district's figures: what a period's cases came to, where volume
//! rises, and what may be published. The store counts; this module says
//! what the counts mean, so that the server, the replay command's ground
//! truth and the tests agree on one definition of every figure.

use chrono::{DateTime, Duration, Utc};

use super::error::{DomainError, Violations};

/// Handling time limits behind the "within one day / three days" shares.
pub const ONE_DAY_SECONDS: i64 = 24 * 3600;
pub const THREE_DAYS_SECONDS: i64 = 72 * 3600;

/// The longest period one request may cover.
const MAX_PERIOD_DAYS: i64 = 3 * 366;

/// Which cases a figure is about: those received in `[from, to)`, led (or,
/// before any dispatch, owned) by one of `units` when given, in the
/// category `category_prefix` and below when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseScope {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `None`: every unit.
    pub units: Option<Vec<String>>,
    pub category_prefix: Option<String>,
}

impl CaseScope {
    /// Checks a requested period.
    pub fn period(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), DomainError> {
        let mut violations = Violations::default();
        if from.is_none() {
            violations.push("scope.from", "must be set");
        }
        if to.is_none() {
            violations.push("scope.to", "must be set");
        }
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                violations.push("scope.to", "must be after scope.from");
            } else if to - from > Duration::days(MAX_PERIOD_DAYS) {
                violations.push("scope.to", "a period spans at most three years");
            }
        }
        violations.into_result()?;
        Ok((from.unwrap_or_default(), to.unwrap_or_default()))
    }
}

/// What the store counts for one scope; see `CaseStats` for the meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseCounts {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub withdrawn: u64,
    pub merged: u64,
    pub closed: u64,
    pub closed_on_time: u64,
    pub open_overdue: u64,
    pub closed_within_one_day: u64,
    pub closed_within_three_days: u64,
    pub rated: u64,
    pub satisfied: u64,
    pub rehandled: u64,
    pub median_handling_seconds: i64,
    pub p90_handling_seconds: i64,
    /// Acceptance or rejection decided / of those, notice sent / delivered.
    pub decided: u64,
    pub acceptance_notice_sent: u64,
    pub acceptance_notice_delivered: u64,
    /// Resolved at least once / of those, resolution notice sent / delivered.
    pub resolved: u64,
    pub handling_notice_sent: u64,
    pub handling_notice_delivered: u64,
}

/// Returns and extensions of one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitCounts {
    pub unit_id: String,
    pub returns: u64,
    pub extensions: u64,
}

/// A share and what it comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub numerator: u64,
    pub denominator: u64,
}

impl Rate {
    pub fn of(numerator: u64, denominator: u64) -> Rate {
        Rate {
            numerator,
            denominator,
        }
    }

    /// 0 when nothing was counted, so that an empty period reads as no
    /// achievement rather than as a perfect one.
    pub fn value(self) -> f64 {
        if self.denominator == 0 {
            0.0
        } else {
            self.numerator as f64 / self.denominator as f64
        }
    }
}

/// The rates a set of counts gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaseRates {
    pub on_time_of_closed: Rate,
    pub on_time_including_open_overdue: Rate,
    pub closed_within_one_day: Rate,
    pub closed_within_three_days: Rate,
    pub satisfaction: Rate,
    pub rehandling: Rate,
    pub acceptance_notice_sent: Rate,
    pub acceptance_notice_delivered: Rate,
    pub handling_notice_sent: Rate,
    pub handling_notice_delivered: Rate,
}

impl CaseCounts {
    pub fn rates(&self) -> CaseRates {
        CaseRates {
            on_time_of_closed: Rate::of(self.closed_on_time, self.closed),
            on_time_including_open_overdue: Rate::of(
                self.closed_on_time,
                self.closed + self.open_overdue,
            ),
            closed_within_one_day: Rate::of(self.closed_within_one_day, self.closed),
            closed_within_three_days: Rate::of(self.closed_within_three_days, self.closed),
            satisfaction: Rate::of(self.satisfied, self.rated),
            rehandling: Rate::of(self.rehandled, self.closed),
            acceptance_notice_sent: Rate::of(self.acceptance_notice_sent, self.decided),
            acceptance_notice_delivered: Rate::of(self.acceptance_notice_delivered, self.decided),
            handling_notice_sent: Rate::of(self.handling_notice_sent, self.resolved),
            handling_notice_delivered: Rate::of(self.handling_notice_delivered, self.resolved),
        }
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with
/// at least `percent`% of the values at or below it; 0 for no values.
/// PostgreSQL's `percentile_disc` gives the same.
pub fn nearest_rank(sorted: &[i64], percent: u32) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * percent as usize).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The offset of the nearest-rank percentile among `count` sorted values.
pub fn nearest_rank_offset(count: u64, percent: u32) -> u64 {
    (count * u64::from(percent)).div_ceil(100).max(1) - 1
}

/// How hotspots are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotspotPolicy {
    pub window: Duration,
    /// How many windows before the previous one make the usual level.
    pub baseline_windows: u32,
    /// A spike needs at least this many cases in the window ...
    pub spike_min_count: u64,
    /// ... and a score of at least this many spreads above the usual level.
    pub spike_score: u32,
}

impl Default for HotspotPolicy {
    fn default() -> Self {
        HotspotPolicy {
            window: Duration::hours(24),
            baseline_windows: 28,
            spike_min_count: 20,
            spike_score: 4,
        }
    }
}

impl HotspotPolicy {
    /// The policy a request asks for, zeros meaning the defaults.
    pub fn requested(
        &self,
        window_hours: u32,
        baseline_windows: u32,
    ) -> Result<HotspotPolicy, DomainError> {
        let mut violations = Violations::default();
        if window_hours > 720 {
            violations.push("window_hours", "must be 1 to 720");
        }
        if baseline_windows != 0 && !(2..=90).contains(&baseline_windows) {
            violations.push("baseline_windows", "must be 2 to 90");
        }
        violations.into_result()?;
        Ok(HotspotPolicy {
            window: if window_hours == 0 {
                self.window
            } else {
                Duration::hours(i64::from(window_hours))
            },
            baseline_windows: if baseline_windows == 0 {
                self.baseline_windows
            } else {
                baseline_windows
            },
            ..*self
        })
    }

    /// The windows counted, oldest first, the current one (ending at `now`)
    /// last: the baseline windows, then the previous one, then the current.
    pub fn windows(&self, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let count = self.baseline_windows as i32 + 2;
        (0..count)
            .rev()
            .map(|back| {
                let end = now - self.window * back;
                (end - self.window, end)
            })
            .collect()
    }

    /// Judges one key from its counts per window, in the order `windows`
    /// gives.
    pub fn judge(&self, counts: &[u64]) -> Judgement {
        let (current, earlier) = counts.split_last().unwrap_or((&0, &[]));
        let (previous, baseline) = earlier.split_last().unwrap_or((&0, &[]));
        let n = baseline.len().max(1) as f64;
        let mean = baseline.iter().sum::<u64>() as f64 / n;
        let variance = baseline
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let stddev = variance.sqrt();
        // A quiet key has no spread to speak of: fall back to the Poisson
        // spread of its mean, and never below one case.
        let spread = stddev.max(mean.sqrt()).max(1.0);
        let score = (*current as f64 - mean) / spread;
        Judgement {
            count: *current,
            previous_count: *previous,
            baseline_mean: mean,
            baseline_stddev: stddev,
            rise: *current as i64 - *previous as i64,
            score,
            spike: *current >= self.spike_min_count && score >= f64::from(self.spike_score),
        }
    }
}

/// What the counts of one key say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    pub count: u64,
    pub previous_count: u64,
    pub baseline_mean: f64,
    pub baseline_stddev: f64,
    pub rise: i64,
    pub score: f64,
    pub spike: bool,
}

/// Which way cases are grouped for hotspots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HotspotDimension {
    /// Second-level categories.
    Category,
    /// Subdistricts, by the unit leading (or owning) the case.
    Area,
}

impl HotspotDimension {
    pub fn as_str(self) -> &'static str {
        match self {
            HotspotDimension::Category => "category",
            HotspotDimension::Area => "area",
        }
    }

    pub fn parse(text: &str) -> Option<HotspotDimension> {
        match text {
            "category" => Some(HotspotDimension::Category),
            "area" => Some(HotspotDimension::Area),
            _ => None,
        }
    }
}

/// The key of cases not yet given to any unit, in the area dimension.
pub const UNASSIGNED_AREA: &str = "unassigned";

/// A judged key.
#[derive(Debug, Clone, PartialEq)]
pub struct Hotspot {
    pub dimension: HotspotDimension,
    pub key: String,
    pub name: String,
    pub judgement: Judgement,
}

/// A spike as recorded when the supervision pass saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeAlert {
    pub id: i64,
    pub hotspot: Hotspot,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub raised_at: DateTime<Utc>,
}

/// Published figures fold categories rarer than this into one row.
pub const PUBLIC_MIN_CELL: u64 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_its_definition() {
        let values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(nearest_rank(&values, 50), 5);
        assert_eq!(nearest_rank(&values, 90), 9);
        assert_eq!(nearest_rank(&values[..3], 50), 2);
        assert_eq!(nearest_rank(&values[..1], 90), 1);
        assert_eq!(nearest_rank(&[], 50), 0);
        for count in 1..40u64 {
            let sorted: Vec<i64> = (0..count as i64).collect();
            for percent in [50, 90] {
                assert_eq!(
                    nearest_rank(&sorted, percent),
                    nearest_rank_offset(count, percent) as i64
                );
            }
        }
    }

    #[test]
    fn rates_keep_their_counts_and_an_empty_rate_is_zero() {
        let counts = CaseCounts {
            closed: 8,
            closed_on_time: 6,
            open_overdue: 2,
            ..CaseCounts::default()
        };
        let rates = counts.rates();
        assert_eq!(rates.on_time_of_closed.value(), 0.75);
        assert_eq!(rates.on_time_including_open_overdue.value(), 0.6);
        assert_eq!(rates.satisfaction, Rate::of(0, 0));
        assert_eq!(rates.satisfaction.value(), 0.0);
    }

    #[test]
    fn a_jump_far_above_the_usual_level_is_a_spike() {
        let policy = HotspotPolicy::default();
        let mut counts = vec![5u64; 28];
        counts.extend([6, 60]);
        let judged = policy.judge(&counts);
        assert!(judged.spike, "{judged:?}");
        assert_eq!(judged.rise, 54);
        assert_eq!(judged.baseline_mean, 5.0);

        // Ordinary variation is not.
        let mut counts: Vec<u64> = (0..28).map(|i| 20 + (i % 7) * 3).collect();
        counts.extend([26, 38]);
        assert!(!policy.judge(&counts).spike);

        // Nor is a jump from nothing to a handful.
        let mut counts = vec![0u64; 28];
        counts.extend([0, 12]);
        let judged = policy.judge(&counts);
        assert!(judged.score >= 4.0 && !judged.spike, "{judged:?}");
    }

    #[test]
    fn windows_end_at_now_and_tile_back() {
        let policy = HotspotPolicy {
            window: Duration::hours(24),
            baseline_windows: 3,
            ..HotspotPolicy::default()
        };
        let now = DateTime::parse_from_rfc3339("2026-09-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let windows = policy.windows(now);
        assert_eq!(windows.len(), 5);
        assert_eq!(windows[4].1, now);
        assert_eq!(windows[0].0, now - Duration::days(5));
        assert!(windows.windows(2).all(|w| w[0].1 == w[1].0));
    }

    #[test]
    fn periods_are_checked() {
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        assert!(CaseScope::period(at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z")).is_ok());
        assert!(CaseScope::period(at("2026-02-01T00:00:00Z"), at("2026-01-01T00:00:00Z")).is_err());
        assert!(CaseScope::period(None, at("2026-01-01T00:00:00Z")).is_err());
        assert!(CaseScope::period(at("2020-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")).is_err());
    }
}
