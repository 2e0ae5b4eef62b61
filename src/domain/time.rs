//! Day boundaries. Times are stored in UTC; "today", working days and daily
//! budgets follow the district's civil day, Asia/Shanghai. China has kept
//! UTC+8 without daylight saving since 1991, so a fixed offset is exact for
//! every date this system will see.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

pub const SHANGHAI_OFFSET_SECONDS: i32 = 8 * 3600;

pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(SHANGHAI_OFFSET_SECONDS).expect("UTC+8 is a valid offset")
}

/// The civil date in the district at the given instant.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&shanghai()).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_utc_evening_is_the_next_morning_in_the_district() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 30, 0).unwrap();
        assert_eq!(
            local_date(at),
            NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()
        );
    }

    #[test]
    fn a_utc_afternoon_before_four_is_the_same_day() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 15, 59, 59).unwrap();
        assert_eq!(
            local_date(at),
            NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
        );
    }
}
