//! `spool schedule create|list|get|pause|resume|delete`, and the `[[schedule]]` tables of a
//! `spool.toml` that `spool handler upload` applies.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use spool_client::types::{RunView, ScheduleList, SchedulePatch, ScheduleView};
use spool_client::{Client, Method, StatusCode};

use super::output::{self, Table};
use super::{Connection, parse_json, show};
use crate::cli::project::{MANIFEST, Manifest};

/// Arguments of `spool schedule`.
#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ScheduleCommand {
    /// Create a schedule: a job for HANDLER at every tick of a cron expression.
    Create(Box<CreateArgs>),
    /// List the schedules with their next fire time and last runs.
    List,
    /// Show a schedule, its next fire times and its last runs.
    Get {
        /// The schedule's name.
        name: String,
    },
    /// Pause a schedule: no tick fires until it is resumed.
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Resume a paused schedule from its next tick on (ticks while paused do not fire).
    Resume {
        /// The schedule's name.
        name: String,
    },
    /// Delete a schedule (the jobs it enqueued stay).
    Delete {
        /// The schedule's name.
        name: String,
    },
}

/// Arguments of `spool schedule create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The schedule's name: 1-64 of A-Za-z0-9._-, starting with a letter or digit.
    name: String,
    /// The cron expression: 5 fields (minute hour day month weekday), or 6 with seconds
    /// first; e.g. '*/15 * * * *', '0 7 * * MON-FRI', '@daily'.
    #[arg(long)]
    cron: String,
    /// The handler each tick's job runs.
    #[arg(long)]
    handler: String,
    /// The IANA time zone the expression is read in [default: UTC].
    #[arg(long)]
    timezone: Option<String>,
    /// Each job's payload, as JSON [default: null].
    #[arg(long, value_parser = parse_json, value_name = "JSON")]
    payload: Option<Value>,
    /// The queue [default: default].
    #[arg(long)]
    queue: Option<String>,
    /// Lower runs first [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    priority: Option<i16>,
    /// Attempts in all [default: the handler's, else 20].
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Per-attempt limits, as JSON (e.g. '{"timeout_ms": 5000}').
    #[arg(long, value_parser = parse_json, value_name = "JSON")]
    limits: Option<Value>,
    /// Whether a tick fires while the previous tick's job is pending or running.
    #[arg(long, value_parser = ["skip", "allow"])]
    overlap: Option<String>,
    /// What happens to ticks missed while no node ran.
    #[arg(long, value_parser = ["none", "latest", "all"])]
    catch_up: Option<String>,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
}

/// Runs a `spool schedule` subcommand.
pub async fn run(args: ScheduleArgs) -> anyhow::Result<()> {
    let client = args.conn.client(false)?;
    let json = args.conn.json;
    match args.command {
        ScheduleCommand::Create(args) => {
            let CreateArgs {
                name,
                cron,
                handler,
                timezone,
                payload,
                queue,
                priority,
                max_attempts,
                limits,
                overlap,
                catch_up,
                paused,
            } = *args;
            let mut body = json!({"name": name, "cron": cron, "handler": handler});
            let optional = [
                ("timezone", timezone.map(Value::from)),
                ("payload", payload),
                ("queue", queue.map(Value::from)),
                ("priority", priority.map(Value::from)),
                ("max_attempts", max_attempts.map(Value::from)),
                ("limits", limits),
                ("overlap", overlap.map(Value::from)),
                ("catch_up", catch_up.map(Value::from)),
                ("enabled", paused.then_some(Value::Bool(false))),
            ];
            for (field, value) in optional {
                if let Some(value) = value {
                    body[field] = value;
                }
            }
            // The payload and limits go as they were typed: the API names what it does not
            // take.
            let reply = client
                .request::<ScheduleView>(Method::POST, &["schedules"])
                .json(&body)
                .reply()
                .await?;
            show(&reply, json, |s| {
                output::print(&format!(
                    "created schedule {} ({}); next: {}\n",
                    s.name,
                    state(&s),
                    output::time(s.next_fire_times.first().copied())
                ));
            })
        }
        ScheduleCommand::List => {
            let reply = client.schedule_list().reply().await?;
            show(&reply, json, |list: ScheduleList| {
                let mut table = Table::new(&[
                    "NAME", "CRON", "TIMEZONE", "HANDLER", "STATE", "NEXT", "LAST", "RUNS",
                ]);
                for s in list.schedules {
                    table.row(vec![
                        s.name.clone(),
                        s.cron.clone(),
                        s.timezone.clone(),
                        s.handler.clone(),
                        state(&s).into(),
                        output::time(s.next_fire_times.first().copied()),
                        output::time(s.last_fired_at),
                        s.last_runs
                            .iter()
                            .map(run_word)
                            .collect::<Vec<_>>()
                            .join(","),
                    ]);
                }
                table.print("no schedules");
            })
        }
        ScheduleCommand::Get { name } => {
            let reply = client.schedule_get(&name).reply().await?;
            show(&reply, json, print_schedule)
        }
        ScheduleCommand::Pause { name } => pause(&client, json, &name, true).await,
        ScheduleCommand::Resume { name } => pause(&client, json, &name, false).await,
        ScheduleCommand::Delete { name } => {
            let reply = client.schedule_delete(&name).reply().await?;
            if json {
                if !reply.body.is_empty() {
                    output::print_line(&reply.text());
                }
            } else {
                output::print(&format!("deleted schedule {name}\n"));
            }
            Ok(())
        }
    }
}

/// Pauses (or resumes) schedule `name`.
async fn pause(client: &Client, json: bool, name: &str, pause: bool) -> anyhow::Result<()> {
    let patch = SchedulePatch {
        enabled: Some(!pause),
        ..SchedulePatch::default()
    };
    let reply = client.schedule_update(name, &patch).reply().await?;
    show(&reply, json, |s| {
        let what = if pause { "paused" } else { "resumed" };
        output::print(&format!(
            "{what} schedule {}; next: {}\n",
            s.name,
            output::time(s.next_fire_times.first().copied())
        ));
    })
}

/// What a run came to, in a word: the job's state, or the tick's outcome without one.
fn run_word(run: &RunView) -> &str {
    match (run.outcome.as_str(), &run.job_state) {
        ("enqueued" | "duplicate", Some(state)) => state,
        (outcome, _) => outcome,
    }
}

fn state(s: &ScheduleView) -> &'static str {
    if s.enabled { "active" } else { "paused" }
}

fn print_schedule(s: ScheduleView) {
    let mut text = format!(
        "{} ({}): {} in {}, handler {} on queue {}, overlap {}, catch-up {}\n",
        s.name,
        state(&s),
        s.cron,
        s.timezone,
        s.handler,
        s.queue,
        s.overlap,
        s.catch_up
    );
    text.push_str("next:");
    if s.next_fire_times.is_empty() {
        text.push_str(" -");
    }
    for t in &s.next_fire_times {
        text.push_str(&format!(" {}", output::time(Some(*t))));
    }
    text.push_str("\n\n");
    output::print(&text);
    let mut table = Table::new(&["TICK", "OUTCOME", "JOB", "STATE"]);
    for r in &s.last_runs {
        table.row(vec![
            output::time(Some(r.tick_at)),
            match &r.detail {
                Some(detail) => format!("{}: {}", r.outcome, output::short(detail, 60)),
                None => r.outcome.clone(),
            },
            r.job_id.map_or_else(|| "-".into(), |id| id.to_string()),
            r.job_state.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print("no runs yet");
}

/// Applies the `[[schedule]]` tables of the `spool.toml` in `dir`, if there is one, as
/// schedules of `handler` (an upsert each: applying the same file twice changes nothing).
/// Returns how many were applied. Prints a line for each, but nothing with `--json` (whose
/// output stays the upload's one document).
pub async fn apply_manifest(
    client: &Client,
    json: bool,
    dir: &Path,
    handler: &str,
) -> anyhow::Result<usize> {
    let path = dir.join(MANIFEST);
    let Some(manifest) = Manifest::read(dir)? else {
        return Ok(0);
    };
    for (i, table) in manifest.schedule.iter().enumerate() {
        let mut body = serde_json::to_value(table).expect("TOML converts to JSON");
        let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
            bail!("{}: schedule[{i}] has no name", path.display());
        };
        if body.get("handler").is_none() {
            body["handler"] = json!(handler);
        }
        let reply = client
            .request::<ScheduleView>(Method::PUT, &["schedules", &name])
            .json(&body)
            .reply()
            .await
            .with_context(|| format!("{}: schedule {name:?}", path.display()))?;
        if !json {
            let what = if reply.status == StatusCode::CREATED {
                "created"
            } else {
                "applied"
            };
            output::print(&format!("{what} schedule {name} (from {MANIFEST})\n"));
        }
    }
    Ok(manifest.schedule.len())
}
