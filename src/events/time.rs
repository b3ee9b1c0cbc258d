//! RFC 3339 timestamps without a date crate: events carry wall-clock time,
//! taken in the actor layer.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as RFC 3339 in UTC with milliseconds: `2026-11-21T09:42:32.123Z`.
pub fn timestamp_now() -> String {
    rfc3339(SystemTime::now())
}

/// `time` as RFC 3339 in UTC; a time before 1970 is written as the epoch.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let millis = since.subsec_millis();
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Reads back what [`rfc3339`] writes (`YYYY-MM-DDTHH:MM:SS[.mmm]Z`).
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 UTC time like 2026-11-21T09:42:32.123Z");
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, clock) = body.split_once('T').ok_or_else(bad)?;
    let number = |part: &str| part.parse::<u64>().map_err(|_| bad());
    let date: Vec<&str> = date.split('-').collect();
    let [year, month, day] = date[..] else { return Err(bad()) };
    let (clock, millis) = match clock.split_once('.') {
        Some((clock, fraction)) if fraction.len() == 3 => (clock, number(fraction)?),
        Some(_) => return Err(bad()),
        None => (clock, 0),
    };
    let clock: Vec<&str> = clock.split(':').collect();
    let [hour, minute, second] = clock[..] else { return Err(bad()) };
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    let (hour, minute, second) = (number(hour)?, number(minute)?, number(second)?);
    if !(1970..=999_999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let secs = days as u64 * 86_400 + hour * 3600 + minute * 60 + second;
    let time = UNIX_EPOCH + std::time::Duration::from_secs(secs) + std::time::Duration::from_millis(millis);
    (rfc3339(time) == text || rfc3339(time).trim_end_matches(".000Z") == body).then_some(time).ok_or_else(bad)
}

/// A proleptic Gregorian date to days since 1970-01-01 (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so no date crate is needed for a timestamp.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_millis(951_782_400_250);
        assert_eq!(rfc3339(leap_day), "2000-02-29T00:00:00.250Z");
        let late = UNIX_EPOCH + Duration::from_secs(1_795_253_552);
        assert_eq!(rfc3339(late), "2026-11-21T09:32:32.000Z");
    }

    #[test]
    fn timestamps_read_back_and_impossible_dates_are_refused() {
        for millis in [0, 951_782_400_250, 1_795_253_552_123, 4_102_444_800_000] {
            let time = UNIX_EPOCH + Duration::from_millis(millis);
            assert_eq!(parse_rfc3339(&rfc3339(time)), Ok(time));
        }
        assert_eq!(parse_rfc3339("2026-11-21T09:32:32Z"), Ok(UNIX_EPOCH + Duration::from_secs(1_795_253_552)));
        for bad in ["", "2026-02-30T00:00:00.000Z", "2026-11-21 09:32:32Z", "2026-11-21T25:00:00Z", "x-1-1T0:0:0Z"] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
