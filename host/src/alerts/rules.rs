//! The built-in rules: what each makes of one queue's figures (or, for `schedule_failing`, of
//! one schedule's last runs). Pure logic, no I/O.

use std::fmt;
use std::time::Duration;

use super::AlertsConfig;
use crate::store::{AlertFigures, ScheduleFailures};

/// A built-in alert rule. Each is evaluated per queue of each tenant, but `ScheduleFailing`,
/// per schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Failed attempts over completed and failed ones, over a window, above a threshold.
    FailureRate,
    /// Jobs dead-lettered over a window, more than a threshold.
    DeadLetterGrowth,
    /// The oldest available job has waited longer than a threshold.
    BacklogAge,
    /// A schedule's last N finished runs all ended dead. Its alert's scope (stored as its
    /// `queue`) is the schedule's name.
    ScheduleFailing,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 4] = [
        Rule::FailureRate,
        Rule::DeadLetterGrowth,
        Rule::BacklogAge,
        Rule::ScheduleFailing,
    ];

    /// The rules evaluated per queue.
    pub const QUEUE: [Rule; 3] = [Rule::FailureRate, Rule::DeadLetterGrowth, Rule::BacklogAge];

    /// Returns the rule's name, as stored, shown and sent: `failure_rate`,
    /// `dead_letter_growth`, `backlog_age` or `schedule_failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::FailureRate => "failure_rate",
            Rule::DeadLetterGrowth => "dead_letter_growth",
            Rule::BacklogAge => "backlog_age",
            Rule::ScheduleFailing => "schedule_failing",
        }
    }

    /// Parses a rule's name.
    pub fn parse(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Returns whether `config` has the rule evaluated.
    pub fn enabled(self, config: &AlertsConfig) -> bool {
        match self {
            Rule::FailureRate => config.failure_rate.enabled,
            Rule::DeadLetterGrowth => config.dead_letter_growth.enabled,
            Rule::BacklogAge => config.backlog_age.enabled,
            Rule::ScheduleFailing => config.schedule_failing.enabled,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule concludes from one queue's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The condition holds: fire, or stay firing.
    Fire,
    /// Too little evidence either way: a firing alert stays firing, a resolved one resolved.
    Hold,
    /// The condition does not hold: resolve, or stay resolved.
    Resolve,
}

/// A rule's reading of one queue: the figure, the threshold it is compared with, the verdict,
/// and a sentence for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The figure: a fraction for `failure_rate`, a count for `dead_letter_growth`, seconds for
    /// `backlog_age`.
    pub value: f64,
    /// The threshold, in the value's unit.
    pub threshold: f64,
    /// What the rule concludes.
    pub verdict: Verdict,
    /// The figure and the threshold in words.
    pub description: String,
}

/// Applies the `schedule_failing` rule, as `config` sets it, to one schedule's last runs: it
/// fires when the last `runs` finished runs all ended dead, resolves when one of them did not,
/// and holds while fewer have finished, all dead.
pub fn observe_schedule(config: &AlertsConfig, f: &ScheduleFailures) -> Observation {
    let runs = i64::from(config.schedule_failing.runs);
    let verdict = if f.dead < f.finished || f.finished == 0 {
        Verdict::Resolve
    } else if f.finished >= runs {
        Verdict::Fire
    } else {
        Verdict::Hold
    };
    Observation {
        value: f.dead.max(0) as f64,
        threshold: runs as f64,
        verdict,
        description: format!(
            "{} of the last {} finished runs of schedule {} of tenant {} ended dead; the alert \
             fires when the last {runs} all do",
            f.dead, f.finished, f.schedule, f.tenant
        ),
    }
}

/// Applies `rule`, as `config` sets it, to one queue's `figures`. `ScheduleFailing` is not a
/// queue's rule ([`observe_schedule`]): applied to a queue, it resolves.
pub fn observe(rule: Rule, config: &AlertsConfig, figures: &AlertFigures) -> Observation {
    let scope = format!("queue {} of tenant {}", figures.queue, figures.tenant);
    match rule {
        Rule::ScheduleFailing => observe_schedule(
            config,
            &ScheduleFailures {
                tenant_id: figures.tenant_id,
                tenant: figures.tenant.clone(),
                schedule: figures.queue.clone(),
                finished: 0,
                dead: 0,
            },
        ),
        Rule::FailureRate => {
            let c = &config.failure_rate;
            let total = figures.completed.max(0) + figures.failed.max(0);
            let rate = if total == 0 {
                0.0
            } else {
                figures.failed.max(0) as f64 / total as f64
            };
            let verdict = if total == 0 || rate <= c.threshold {
                Verdict::Resolve
            } else if total < i64::from(c.min_attempts) {
                Verdict::Hold
            } else {
                Verdict::Fire
            };
            Observation {
                value: rate,
                threshold: c.threshold,
                verdict,
                description: format!(
                    "{} of {total} attempts failed ({}) in {scope} over the last {}; the \
                     threshold is {} (with at least {} attempts)",
                    figures.failed,
                    percent(rate),
                    human(c.window),
                    percent(c.threshold),
                    c.min_attempts,
                ),
            }
        }
        Rule::DeadLetterGrowth => {
            let c = &config.dead_letter_growth;
            let dead = figures.dead.max(0) as u64;
            Observation {
                value: dead as f64,
                threshold: c.threshold as f64,
                verdict: if dead > c.threshold {
                    Verdict::Fire
                } else {
                    Verdict::Resolve
                },
                description: format!(
                    "{dead} {} of {scope} dead-lettered over the last {}; the threshold is {}",
                    if dead == 1 { "job" } else { "jobs" },
                    human(c.window),
                    c.threshold,
                ),
            }
        }
        Rule::BacklogAge => {
            let c = &config.backlog_age;
            let age = figures.oldest_available_age;
            Observation {
                value: age.unwrap_or(Duration::ZERO).as_secs_f64(),
                threshold: c.threshold.as_secs_f64(),
                verdict: if age.is_some_and(|a| a > c.threshold) {
                    Verdict::Fire
                } else {
                    Verdict::Resolve
                },
                description: match age {
                    Some(age) => format!(
                        "the oldest available job of {scope} has waited {}; the threshold is {}",
                        human(age),
                        human(c.threshold),
                    ),
                    None => format!(
                        "no job of {scope} is waiting to run; the threshold is {}",
                        human(c.threshold)
                    ),
                },
            }
        }
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Writes a duration the way the config takes it, to the second: `45s`, `5m`, `1h30m`,
/// `2d3h`; under a second, `250ms`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, unit)| format!("{n}{unit}"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(completed: i64, failed: i64, dead: i64, age: Option<u64>) -> AlertFigures {
        AlertFigures {
            tenant_id: 1,
            tenant: "acme".into(),
            queue: "default".into(),
            completed,
            failed,
            dead,
            oldest_available_age: age.map(Duration::from_secs),
        }
    }

    #[test]
    fn the_failure_rate_fires_above_its_threshold_with_enough_attempts() {
        let config = AlertsConfig::default(); // 20 %, at least 10 attempts
        let o = observe(Rule::FailureRate, &config, &figures(7, 3, 0, None));
        assert_eq!((o.verdict, o.value), (Verdict::Fire, 0.3));
        assert_eq!(
            o.description,
            "3 of 10 attempts failed (30.0%) in queue default of tenant acme over the last \
             5m; the threshold is 20.0% (with at least 10 attempts)"
        );
        let at = observe(Rule::FailureRate, &config, &figures(8, 2, 0, None));
        assert_eq!(
            at.verdict,
            Verdict::Resolve,
            "at the threshold is not above it"
        );
        let few = observe(Rule::FailureRate, &config, &figures(0, 3, 0, None));
        assert_eq!(
            few.verdict,
            Verdict::Hold,
            "three failures are too few to tell"
        );
        let idle = observe(Rule::FailureRate, &config, &figures(0, 0, 0, None));
        assert_eq!((idle.verdict, idle.value), (Verdict::Resolve, 0.0));
    }

    #[test]
    fn dead_letters_fire_above_their_count() {
        let mut config = AlertsConfig::default();
        let o = observe(Rule::DeadLetterGrowth, &config, &figures(0, 0, 1, None));
        assert_eq!((o.verdict, o.value, o.threshold), (Verdict::Fire, 1.0, 0.0));
        assert_eq!(
            o.description,
            "1 job of queue default of tenant acme dead-lettered over the last 10m; the \
             threshold is 0"
        );
        config.dead_letter_growth.threshold = 5;
        let o = observe(Rule::DeadLetterGrowth, &config, &figures(0, 0, 5, None));
        assert_eq!(o.verdict, Verdict::Resolve);
    }

    #[test]
    fn the_backlog_age_fires_when_the_oldest_job_waited_too_long() {
        let config = AlertsConfig::default(); // 5 min
        let o = observe(Rule::BacklogAge, &config, &figures(0, 0, 0, Some(301)));
        assert_eq!(
            (o.verdict, o.value, o.threshold),
            (Verdict::Fire, 301.0, 300.0)
        );
        assert_eq!(
            o.description,
            "the oldest available job of queue default of tenant acme has waited 5m1s; the \
             threshold is 5m"
        );
        let o = observe(Rule::BacklogAge, &config, &figures(0, 0, 0, Some(300)));
        assert_eq!(o.verdict, Verdict::Resolve);
        let o = observe(Rule::BacklogAge, &config, &figures(0, 0, 0, None));
        assert_eq!((o.verdict, o.value), (Verdict::Resolve, 0.0));
    }

    #[test]
    fn a_schedule_fires_when_its_last_runs_all_failed() {
        let config = AlertsConfig::default(); // 3 runs
        let f = |finished, dead| ScheduleFailures {
            tenant_id: 1,
            tenant: "acme".into(),
            schedule: "nightly".into(),
            finished,
            dead,
        };
        let o = observe_schedule(&config, &f(3, 3));
        assert_eq!((o.verdict, o.value, o.threshold), (Verdict::Fire, 3.0, 3.0));
        assert_eq!(
            o.description,
            "3 of the last 3 finished runs of schedule nightly of tenant acme ended dead; the \
             alert fires when the last 3 all do"
        );
        assert_eq!(observe_schedule(&config, &f(2, 2)).verdict, Verdict::Hold);
        assert_eq!(
            observe_schedule(&config, &f(3, 2)).verdict,
            Verdict::Resolve
        );
        assert_eq!(
            observe_schedule(&config, &f(0, 0)).verdict,
            Verdict::Resolve
        );
    }

    #[test]
    fn rules_round_trip_their_names() {
        for rule in Rule::ALL {
            assert_eq!(Rule::parse(rule.as_str()), Some(rule));
        }
        assert_eq!(Rule::parse("nope"), None);
    }

    #[test]
    fn durations_are_written_as_the_config_reads_them() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 3 * 3600)), "2d3h");
    }
}
