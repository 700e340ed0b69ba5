//! Rotation schedules (spec §6.3): `AutomaticallyAfterDays`, `rate(N hours|days)` and AWS's
//! six-field `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, each with an optional
//! window `Duration` (`"3h"`). All in UTC.
//!
//! A schedule yields *windows*: a rotation may start at any moment of a window and
//! `NextRotationDate` is the window's end ("on or before"). Coffer starts due rotations at the
//! window's start, so a test with paused time knows exactly when one runs.
//!
//! AWS's texts for schedule errors are not recorded [E]; these say what is allowed.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{Error, Result};
use crate::model::MS_PER_DAY;

const MS_PER_HOUR: i64 = 3_600_000;
/// AWS's minimum: a rotation at most every four hours.
const MIN_INTERVAL_MS: i64 = 4 * MS_PER_HOUR;

#[derive(Debug, Clone)]
enum Kind {
    /// `AutomaticallyAfterDays` or `rate(N days)`: windows start at midnight.
    Days(i64),
    /// `rate(N hours)`: windows start on the hour.
    Hours(i64),
    /// `cron(...)`; `daily` when it fires at most once per UTC day.
    Cron { cron: Box<Cron>, daily: bool },
}

#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    duration_ms: Option<i64>,
}

/// A rotation window `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_parameter(message)
}

fn to_dt(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn midnight(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY) * MS_PER_DAY
}

fn parse_rate(body: &str) -> Option<Kind> {
    let (n, unit) = body.trim().split_once(' ')?;
    let n: i64 = n.parse().ok()?;
    if n < 1 {
        return None;
    }
    match unit.trim() {
        "hour" | "hours" => Some(Kind::Hours(n)),
        "day" | "days" => Some(Kind::Days(n)),
        _ => None,
    }
}

fn parse_cron(body: &str) -> Result<Kind> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let bad = || {
        invalid(format!(
            "The schedule expression cron({body}) is not valid: use six fields, cron(Minutes Hours Day-of-month Month Day-of-week Year), in UTC."
        ))
    };
    if fields.len() != 6 {
        return Err(bad());
    }
    // [D] rotation windows start on the hour: minutes must be 0.
    if fields[0] != "0" {
        return Err(invalid(format!(
            "The schedule expression cron({body}) is not valid: rotation windows start on the hour, so Minutes must be 0."
        )));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .dom_and_dow(false)
        .sloppy_ranges(true)
        .build();
    let pattern = format!("0 {}", fields.join(" "));
    let cron = parser.parse(&pattern).map_err(|_| bad())?;
    // Look at a year of occurrences: the shortest gap decides frequency and windows.
    let mut t = to_dt(0).with_timezone(&Utc);
    let start = Utc::now();
    t = t.max(start);
    let mut min_gap = i64::MAX;
    let mut prev: Option<DateTime<Utc>> = None;
    let mut count = 0;
    for next in cron.iter_after(t).take(400) {
        if let Some(p) = prev {
            min_gap = min_gap.min((next - p).num_milliseconds());
        }
        prev = Some(next);
        count += 1;
    }
    if count == 0 {
        return Err(bad());
    }
    if min_gap < MIN_INTERVAL_MS {
        return Err(too_frequent());
    }
    Ok(Kind::Cron {
        cron: Box::new(cron),
        daily: min_gap >= MS_PER_DAY,
    })
}

fn too_frequent() -> Error {
    invalid(
        "The rotation schedule is too frequent: Secrets Manager rotates a secret at most every four hours.",
    )
}

impl Schedule {
    /// Parses `RotationRules` (already shape-validated): exactly one of the two forms.
    pub fn parse(
        automatically_after_days: Option<i64>,
        schedule_expression: Option<&str>,
        duration: Option<&str>,
    ) -> Result<Schedule> {
        let kind = match (automatically_after_days, schedule_expression) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "You can't specify both AutomaticallyAfterDays and ScheduleExpression in RotationRules.",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "RotationRules must contain AutomaticallyAfterDays or ScheduleExpression.",
                ));
            }
            (Some(days), None) => Kind::Days(days),
            (None, Some(expr)) => {
                let expr = expr.trim();
                if let Some(body) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
                    let kind = parse_rate(body).ok_or_else(|| {
                        invalid(format!(
                            "The schedule expression {expr} is not valid: use rate(N hours) or rate(N days)."
                        ))
                    })?;
                    if matches!(kind, Kind::Hours(h) if h * MS_PER_HOUR < MIN_INTERVAL_MS) {
                        return Err(too_frequent());
                    }
                    kind
                } else if let Some(body) =
                    expr.strip_prefix("cron(").and_then(|r| r.strip_suffix(')'))
                {
                    parse_cron(body)?
                } else {
                    return Err(invalid(format!(
                        "The schedule expression {expr} is not valid: use rate(N hours), rate(N days) or cron(0 H Day-of-month Month Day-of-week Year)."
                    )));
                }
            }
        };
        let duration_ms = match duration {
            None => None,
            Some(d) => {
                let hours: i64 = d
                    .strip_suffix('h')
                    .and_then(|h| h.parse().ok())
                    .filter(|h| (1..=24).contains(h))
                    .ok_or_else(|| {
                        invalid(format!(
                            "The rotation window Duration '{d}' is not valid: use 1h to 24h."
                        ))
                    })?;
                Some(hours * MS_PER_HOUR)
            }
        };
        let schedule = Schedule { kind, duration_ms };
        schedule.check_window()?;
        Ok(schedule)
    }

    fn interval_ms(&self) -> Option<i64> {
        match &self.kind {
            Kind::Days(n) => Some(n * MS_PER_DAY),
            Kind::Hours(n) => Some(n * MS_PER_HOUR),
            Kind::Cron { .. } => None,
        }
    }

    /// [D] a window may not run past the end of its UTC day nor into the next window.
    fn check_window(&self) -> Result<()> {
        let Some(d) = self.duration_ms else {
            return Ok(());
        };
        let crosses = match &self.kind {
            Kind::Days(_) => d > MS_PER_DAY,
            Kind::Hours(_) => self.interval_ms().is_some_and(|i| d > i),
            Kind::Cron { cron, .. } => {
                let mut crossing = false;
                let mut prev: Option<DateTime<Utc>> = None;
                for start in cron.iter_after(Utc::now()).take(400) {
                    let s = start.timestamp_millis();
                    if s + d > midnight(s) + MS_PER_DAY {
                        crossing = true;
                    }
                    if let Some(p) = prev
                        && p.timestamp_millis() + d > s
                    {
                        crossing = true;
                    }
                    prev = Some(start);
                }
                crossing
            }
        };
        if crosses {
            return Err(invalid(
                "The rotation window (Duration) must end before the end of its UTC day and before the next window starts.",
            ));
        }
        Ok(())
    }

    /// The first window that starts after `after_ms` (the last rotation, or when rotation was
    /// configured).
    pub fn next_window(&self, after_ms: i64) -> Window {
        match &self.kind {
            Kind::Days(n) => {
                let start = midnight(after_ms + n * MS_PER_DAY);
                Window {
                    start_ms: start,
                    end_ms: start + self.duration_ms.unwrap_or(MS_PER_DAY),
                }
            }
            Kind::Hours(n) => {
                let t = after_ms + n * MS_PER_HOUR;
                let start = t - t.rem_euclid(MS_PER_HOUR);
                Window {
                    start_ms: start,
                    end_ms: start + self.duration_ms.unwrap_or(MS_PER_HOUR),
                }
            }
            Kind::Cron { cron, daily } => {
                let from = to_dt(after_ms);
                let next = cron
                    .find_next_occurrence(&from, false)
                    .unwrap_or_else(|_| from + ChronoDuration::days(36500));
                let start = next.with_nanosecond(0).unwrap_or(next).timestamp_millis();
                let default = if *daily {
                    midnight(start) + MS_PER_DAY - start
                } else {
                    MS_PER_HOUR
                };
                Window {
                    start_ms: start,
                    end_ms: start + self.duration_ms.unwrap_or(default),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn at(ms: i64) -> String {
        to_dt(ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    #[test]
    fn days_windows_are_whole_utc_days() {
        let s = Schedule::parse(Some(3), None, None).unwrap();
        let w = s.next_window(ms("2026-01-10T15:30:00Z"));
        assert_eq!(at(w.start_ms), "2026-01-13T00:00:00Z");
        assert_eq!(at(w.end_ms), "2026-01-14T00:00:00Z");
    }

    #[test]
    fn rate_in_hours_starts_on_the_hour_with_a_one_hour_window() {
        let s = Schedule::parse(None, Some("rate(6 hours)"), None).unwrap();
        let w = s.next_window(ms("2026-01-10T15:30:00Z"));
        assert_eq!(at(w.start_ms), "2026-01-10T21:00:00Z");
        assert_eq!(at(w.end_ms), "2026-01-10T22:00:00Z");
        let s = Schedule::parse(None, Some("rate(1 day)"), Some("3h")).unwrap();
        let w = s.next_window(ms("2026-01-10T15:30:00Z"));
        assert_eq!(
            (at(w.start_ms), at(w.end_ms)),
            ("2026-01-11T00:00:00Z".into(), "2026-01-11T03:00:00Z".into())
        );
    }

    #[test]
    fn cron_windows_start_at_the_cron_time() {
        // 16:00 UTC on the first Sunday of every month (AWS weekdays: 1 = SUN).
        let s = Schedule::parse(None, Some("cron(0 16 ? * 1#1 *)"), Some("2h")).unwrap();
        let w = s.next_window(ms("2026-02-10T00:00:00Z"));
        assert_eq!(at(w.start_ms), "2026-03-01T16:00:00Z");
        assert_eq!(at(w.end_ms), "2026-03-01T18:00:00Z");
        let daily = Schedule::parse(None, Some("cron(0 8 * * ? *)"), None).unwrap();
        let w = daily.next_window(ms("2026-02-10T09:00:00Z"));
        assert_eq!(
            (at(w.start_ms), at(w.end_ms)),
            ("2026-02-11T08:00:00Z".into(), "2026-02-12T00:00:00Z".into())
        );
    }

    #[test]
    fn too_frequent_schedules_are_refused() {
        for expr in ["rate(3 hours)", "cron(0 * * * ? *)", "cron(0 0/2 * * ? *)"] {
            let err = Schedule::parse(None, Some(expr), None).unwrap_err();
            assert_eq!(err.code, crate::ErrorCode::InvalidParameter, "{expr}");
            assert!(
                err.message.contains("too frequent"),
                "{expr}: {}",
                err.message
            );
        }
        assert!(Schedule::parse(None, Some("rate(4 hours)"), None).is_ok());
    }

    #[test]
    fn malformed_rules_are_refused() {
        for (days, expr, dur) in [
            (Some(1), Some("rate(1 day)"), None),
            (None, None, None),
            (None, Some("rate(two days)"), None),
            (None, Some("cron(30 8 * * ? *)"), None),
            (None, Some("cron(0 8 * *)"), None),
            (None, Some("every day"), None),
            (None, Some("rate(1 day)"), Some("25h")),
            (None, Some("cron(0 22 * * ? *)"), Some("3h")),
            (None, Some("rate(4 hours)"), Some("5h")),
        ] {
            assert!(
                Schedule::parse(days, expr, dur).is_err(),
                "{days:?} {expr:?} {dur:?}"
            );
        }
    }
}
