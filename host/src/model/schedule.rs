//! Periodic jobs: a cron expression in a time zone, and which of its ticks fire. Pure logic,
//! no I/O: the maintenance leader asks [`Cron::plan`] what to enqueue, the API asks
//! [`Cron::upcoming`] what to show.
//!
//! Ticks are instants: a cron expression is read in its IANA zone (`Europe/Berlin`), and each
//! local time it names becomes one instant. Daylight-saving changes follow croner's rules
//! (Vixie cron's): in a spring-forward gap, a fixed-time schedule (`30 2 * * *`) fires at the
//! first instant after the gap and an interval schedule (`*/15 * * * *`) skips the missing
//! times; in a fall-back repeat, a fixed-time schedule fires once (the first pass) and an
//! interval schedule fires in both passes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{
    DateTime, NaiveDateTime, Offset as _, SubsecRound as _, TimeDelta, TimeZone as _, Utc,
};
use chrono_tz::Tz;
use croner::JobType;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

/// Whether a tick may fire while the previous tick's job has not finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The tick is skipped while the previous tick's job is pending or running (the default).
    #[default]
    Skip,
    /// Every tick fires, whatever the previous tick's job is doing.
    Allow,
}

impl Overlap {
    /// Returns the policy's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }

    /// Parses a policy's name.
    pub fn parse(name: &str) -> Option<Overlap> {
        [Overlap::Skip, Overlap::Allow]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// What happens to ticks missed while no node ran (due longer ago than the grace period).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Missed ticks are dropped.
    None,
    /// The latest missed tick fires, unless a tick on time fires anyway (the default): one
    /// catch-up run, like a Kubernetes CronJob's.
    #[default]
    Latest,
    /// Every missed tick fires, oldest first, at most [`CATCH_UP_MAX`] of them (the newest).
    All,
}

impl CatchUp {
    /// Returns the policy's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        }
    }

    /// Parses a policy's name.
    pub fn parse(name: &str) -> Option<CatchUp> {
        [CatchUp::None, CatchUp::Latest, CatchUp::All]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// The most ticks `catch_up: all` fires after a downtime: the newest ones; older ones are
/// dropped as missed.
pub const CATCH_UP_MAX: usize = 100;

/// The most due ticks one plan looks at; a schedule down for longer than this many ticks has
/// its older ticks dropped uncounted.
const SCAN_MAX: usize = 1_000;

/// The longest cron expression accepted, in bytes.
pub const MAX_CRON_LEN: usize = 256;

/// Why a cron expression or a time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not parse.
    #[error(
        "cron: {expr:?} is not a cron expression ({reason}); give 5 fields (minute hour day month weekday) or 6 with seconds first"
    )]
    Expression {
        /// The expression as given.
        expr: String,
        /// What the parser said.
        reason: String,
    },
    /// The expression parses but never matches (`0 0 30 2 *`).
    #[error("cron: {0:?} never fires")]
    Never(String),
    /// The zone is not an IANA time zone name.
    #[error("timezone: {0:?} is not an IANA time zone (like UTC or Europe/Berlin)")]
    Zone(String),
}

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    expr: String,
    cron: croner::Cron,
    zone: Tz,
    /// Whether seconds, minutes and hours are one value each (`30 2 * * *`): such a schedule
    /// fires once in a fall-back repeat, and after a spring-forward gap that swallowed it.
    fixed: bool,
}

/// What one pass does with a schedule's due ticks ([`Cron::plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The ticks to fire, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Due ticks dropped (missed and not caught up), as far as the plan looked.
    pub missed: u64,
    /// The first tick after `now`: where the next pass starts.
    pub next: Option<DateTime<Utc>>,
}

/// How far from an instant a daylight-saving change can still move which local times come
/// next (no zone shifts its clocks by more than this).
const SHIFT_MAX: TimeDelta = TimeDelta::hours(3);

impl Cron {
    /// Parses `expr` (5 fields, or 6 with seconds first; `@daily` and the like too) in the IANA
    /// zone `zone`.
    pub fn parse(expr: &str, zone: &str) -> Result<Cron, CronError> {
        let bad = |reason: String| CronError::Expression {
            expr: expr.to_string(),
            reason,
        };
        if expr.len() > MAX_CRON_LEN {
            return Err(bad(format!("longer than {MAX_CRON_LEN} bytes")));
        }
        let zone: Tz = Tz::from_str(zone).map_err(|_| CronError::Zone(zone.to_string()))?;
        // croner accepts an optional year as a seventh field; Spool's expressions do not.
        if expr.split_whitespace().count() > 6 {
            return Err(bad("more than 6 fields".into()));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| bad(e.to_string()))?;
        let parsed = Cron {
            expr: expr.trim().to_string(),
            fixed: cron.determine_job_type() == JobType::FixedTime,
            cron,
            zone,
        };
        if parsed.next_after(Utc::now()).is_none() {
            return Err(CronError::Never(expr.to_string()));
        }
        Ok(parsed)
    }

    /// Returns the expression as given (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Returns the zone's IANA name.
    pub fn zone(&self) -> &str {
        self.zone.name()
    }

    /// The next local (wall-clock) time the expression names after `n` (or at it, when
    /// `inclusive`). croner is asked in UTC, where no clock ever changes: DST is handled here.
    fn naive_next(&self, n: NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
        self.cron
            .find_next_occurrence(&Utc.from_utc_datetime(&n), inclusive)
            .ok()
            .map(|d| d.naive_utc())
    }

    /// The previous local time the expression names before `n`.
    fn naive_previous(&self, n: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron
            .find_previous_occurrence(&Utc.from_utc_datetime(&n), false)
            .ok()
            .map(|d| d.naive_utc())
    }

    /// The zone's offset from UTC at `t`.
    fn offset(&self, t: DateTime<Utc>) -> TimeDelta {
        let fixed = self.zone.offset_from_utc_datetime(&t.naive_utc()).fix();
        TimeDelta::seconds(i64::from(fixed.local_minus_utc()))
    }

    /// The first instant in `(a, b]` whose offset is not `a`'s: the zone's next change of
    /// clocks, if it falls in there. Steps a day at a time, then halves to the second.
    fn change_in(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let before = self.offset(a);
        let mut lo = a;
        while lo < b {
            let hi = (lo + TimeDelta::days(1)).min(b);
            if self.offset(hi) != before {
                let mut hi = hi;
                while hi - lo > TimeDelta::seconds(1) {
                    let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
                    if self.offset(mid) == before {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                return Some(hi);
            }
            lo = hi;
        }
        None
    }

    /// Returns the first tick strictly after `t`, or `None` if there is none (before the year
    /// 5000).
    ///
    /// Walks the zone's stretches of constant offset from `t`: within one, local times map to
    /// instants one to one. At a spring-forward change, local times in the gap do not exist: a
    /// fixed-time schedule fires at the change instead, an interval schedule skips them. At a
    /// fall-back change, local times repeat: an interval schedule fires in the repeat too, a
    /// fixed-time schedule does not.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks are whole seconds: so is every instant worked with here.
        let t = t.trunc_subsecs(0);
        // Local times before `floor` were passed already (a fall-back repeat).
        let mut floor: Option<NaiveDateTime> = None;
        if self.fixed {
            let earlier = t - SHIFT_MAX;
            if let Some(change) = self.change_in(earlier, t) {
                let (old, new) = (self.offset(earlier), self.offset(change));
                if new < old {
                    floor = Some(change.naive_utc() + old);
                }
            }
        }
        let mut start = t;
        let mut inclusive = false;
        for _ in 0..16 {
            let offset = self.offset(start);
            let mut from = start.naive_utc() + offset;
            let mut from_inclusive = inclusive;
            if let Some(f) = floor
                && f > from
            {
                (from, from_inclusive) = (f, true);
            }
            let local = self.naive_next(from, from_inclusive)?;
            let tick = Utc.from_utc_datetime(&(local - offset));
            let Some(change) = self.change_in(start, tick) else {
                return Some(tick);
            };
            let after = self.offset(change);
            if self.fixed && after > offset && local < change.naive_utc() + after {
                // The local time fell in the gap: fire when the clocks jump.
                return Some(change);
            }
            floor = (self.fixed && after < offset).then(|| change.naive_utc() + offset);
            start = change;
            inclusive = true;
        }
        None
    }

    /// Returns the next `n` ticks after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// Returns the newest ticks (at most [`SCAN_MAX`]) from `from` (inclusive) to `now`
    /// (inclusive), oldest first.
    fn due(&self, from: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        if from > now {
            return vec![];
        }
        // Usually a tick or two: walk forward from `from`, which is how ticks are defined.
        let mut ticks = std::collections::VecDeque::new();
        let mut at = from - TimeDelta::seconds(1);
        while ticks.len() < SCAN_MAX {
            let Some(t) = self.next_after(at).filter(|t| *t <= now) else {
                break;
            };
            ticks.push_back(t);
            at = t;
        }
        if ticks.len() < SCAN_MAX || self.next_after(at).is_none_or(|t| t > now) {
            return ticks.into();
        }
        // A long downtime: walk back over local times from now to about where the newest
        // SCAN_MAX ticks start (cheap however long it was), then forward from a little before.
        let mut local = now.naive_utc() + self.offset(now) + TimeDelta::seconds(1);
        for _ in 0..SCAN_MAX {
            match self.naive_previous(local) {
                Some(previous) => local = previous,
                None => break,
            }
        }
        let estimate = Utc.from_utc_datetime(&local) - self.offset(now) - SHIFT_MAX;
        if estimate > at {
            // What lies between is older than the newest SCAN_MAX ticks.
            ticks.clear();
            at = estimate;
        }
        while let Some(t) = self.next_after(at).filter(|t| *t <= now) {
            if ticks.len() == SCAN_MAX {
                ticks.pop_front();
            }
            ticks.push_back(t);
            at = t;
        }
        ticks.into()
    }

    /// Decides what a pass at `now` fires of the ticks due since `from` (the schedule's next
    /// tick not yet handled): ticks due at most `grace` ago are on time and fire; older ones
    /// were missed and follow `catch_up`.
    pub fn plan(
        &self,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        grace: Duration,
        catch_up: CatchUp,
    ) -> Plan {
        let due = self.due(from, now);
        let grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
        let on_time_from = now
            .checked_sub_signed(grace)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let split = due.partition_point(|t| *t < on_time_from);
        let (missed, on_time) = due.split_at(split);
        let fire: Vec<DateTime<Utc>> = match catch_up {
            CatchUp::None => on_time.to_vec(),
            CatchUp::Latest if on_time.is_empty() => missed.last().copied().into_iter().collect(),
            CatchUp::Latest => on_time.to_vec(),
            CatchUp::All => {
                let skip = due.len().saturating_sub(CATCH_UP_MAX.max(on_time.len()));
                due[skip..].to_vec()
            }
        };
        Plan {
            missed: (due.len() - fire.len()) as u64,
            fire,
            next: self.next_after(now),
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expr, self.zone.name())
    }
}

/// Returns the idempotency key of `schedule`'s tick at `tick`: `schedule:<name>:<RFC 3339 UTC
/// time>`, the same whichever node computes it.
pub fn tick_key(schedule: &str, tick: DateTime<Utc>) -> String {
    format!(
        "schedule:{schedule}:{}",
        tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn times(ticks: &[DateTime<Utc>]) -> Vec<String> {
        ticks
            .iter()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn five_fields_are_minutes_and_six_have_seconds_first() {
        let every_minute = Cron::parse("* * * * *", "UTC").unwrap();
        assert_eq!(
            times(&every_minute.upcoming(utc("2026-01-01T00:00:30Z"), 2)),
            ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]
        );
        let every_second = Cron::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(
            times(&every_second.upcoming(utc("2026-01-01T00:00:30Z"), 2)),
            ["2026-01-01T00:00:31Z", "2026-01-01T00:00:32Z"]
        );
        assert!(Cron::parse("@daily", "UTC").is_ok());
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        for bad in ["", "* * *", "61 * * * *", "* * * * * * *", "nonsense"] {
            let e = Cron::parse(bad, "UTC").unwrap_err();
            assert!(e.to_string().starts_with("cron: "), "{bad:?}: {e}");
        }
        let e = Cron::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(
            e.to_string(),
            "timezone: \"Mars/Olympus\" is not an IANA time zone (like UTC or Europe/Berlin)"
        );
        assert!(matches!(
            Cron::parse("0 0 30 2 *", "UTC"),
            Err(CronError::Never(_))
        ));
    }

    #[test]
    fn a_fixed_time_in_the_spring_forward_gap_fires_once_after_it() {
        // Europe/Berlin skips 02:00-03:00 on 2026-03-29 (01:00 UTC).
        let daily = Cron::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let ticks = daily.upcoming(utc("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            times(&ticks),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST: the first instant after the gap
                "2026-03-30T00:30:00Z", // 02:30 CEST
            ]
        );
    }

    #[test]
    fn a_fall_back_repeat_fires_fixed_times_once_and_intervals_in_both_passes() {
        // Europe/Berlin repeats 02:00-03:00 on 2026-10-25 (00:00-01:00 UTC twice over).
        let daily = Cron::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            times(&daily.upcoming(utc("2026-10-24T12:00:00Z"), 2)),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        let half_hourly = Cron::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            times(&half_hourly.upcoming(utc("2026-10-24T23:45:00Z"), 5)),
            [
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T00:30:00Z", // 02:30 CEST
                "2026-10-25T01:00:00Z", // 02:00 CET
                "2026-10-25T01:30:00Z", // 02:30 CET
                "2026-10-25T02:00:00Z", // 03:00 CET
            ]
        );
        // From inside the second pass, the next tick is later, never one of the first pass.
        assert_eq!(
            half_hourly.next_after(utc("2026-10-25T01:10:00Z")),
            Some(utc("2026-10-25T01:30:00Z"))
        );
    }

    #[test]
    fn ticks_on_time_fire_whatever_the_catch_up() {
        let minutely = Cron::parse("* * * * *", "UTC").unwrap();
        let from = utc("2026-01-01T00:01:00Z");
        let now = utc("2026-01-01T00:02:10Z");
        for catch_up in [CatchUp::None, CatchUp::Latest, CatchUp::All] {
            let plan = minutely.plan(from, now, Duration::from_secs(120), catch_up);
            assert_eq!(
                times(&plan.fire),
                ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]
            );
            assert_eq!(plan.missed, 0);
            assert_eq!(plan.next, Some(utc("2026-01-01T00:03:00Z")));
        }
    }

    #[test]
    fn missed_ticks_follow_the_catch_up() {
        let minutely = Cron::parse("* * * * *", "UTC").unwrap();
        let from = utc("2026-01-01T00:01:00Z");
        // Down for ten minutes: 00:01 to 00:10 are due, 00:10 is 30 s late.
        let now = utc("2026-01-01T00:10:30Z");
        let grace = Duration::from_secs(10);
        let none = minutely.plan(from, now, grace, CatchUp::None);
        assert_eq!((none.fire.len(), none.missed), (0, 10));
        let latest = minutely.plan(from, now, grace, CatchUp::Latest);
        assert_eq!(times(&latest.fire), ["2026-01-01T00:10:00Z"]);
        assert_eq!(latest.missed, 9);
        let all = minutely.plan(from, now, grace, CatchUp::All);
        assert_eq!(all.fire.len(), 10);
        assert_eq!(all.fire[0], from);
        assert_eq!(all.next, Some(utc("2026-01-01T00:11:00Z")));
    }

    #[test]
    fn catching_up_all_is_bounded_to_the_newest_ticks() {
        let every_second = Cron::parse("* * * * * *", "UTC").unwrap();
        let from = utc("2026-01-01T00:00:00Z");
        let now = from + TimeDelta::days(2);
        let plan = every_second.plan(from, now, Duration::from_secs(1), CatchUp::All);
        assert_eq!(plan.fire.len(), CATCH_UP_MAX);
        assert_eq!(*plan.fire.last().unwrap(), now);
        assert_eq!(plan.missed as usize, SCAN_MAX - CATCH_UP_MAX);
    }

    #[test]
    fn after_a_long_downtime_the_latest_missed_tick_is_the_last_one_due() {
        let minutely = Cron::parse("* * * * *", "Europe/Berlin").unwrap();
        let from = utc("2026-03-20T00:01:00Z");
        // Nine days down, a DST change among them: far more than SCAN_MAX ticks.
        let now = utc("2026-03-29T12:00:30Z");
        let plan = minutely.plan(from, now, Duration::from_secs(10), CatchUp::Latest);
        assert_eq!(times(&plan.fire), ["2026-03-29T12:00:00Z"]);
        assert_eq!(plan.missed as usize, SCAN_MAX - 1);
        assert_eq!(plan.next, Some(utc("2026-03-29T12:01:00Z")));
        let all = minutely.plan(from, now, Duration::from_secs(10), CatchUp::All);
        assert_eq!(all.fire.len(), CATCH_UP_MAX);
        assert_eq!(all.fire[0], utc("2026-03-29T10:21:00Z"));
    }

    #[test]
    fn keys_name_the_schedule_and_the_tick_in_utc() {
        let t = utc("2026-03-29T01:00:00Z");
        assert_eq!(
            tick_key("nightly", t),
            "schedule:nightly:2026-03-29T01:00:00Z"
        );
    }
}
