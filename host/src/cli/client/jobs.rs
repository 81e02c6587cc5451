//! `spool job enqueue|enqueue-batch|get|list|cancel|retry`, and the job listing `spool dead
//! list` shares.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::batch;
use super::http::Client;
use super::output::{self, Table};
use super::{Connection, parse_json, show};

/// The page size `--all` asks for when `--limit` is not given: the API's largest.
const PAGE_ALL: u32 = 1_000;
/// The job states, as `--state` takes them.
const STATES: [&str; 7] = [
    "scheduled",
    "available",
    "running",
    "retryable",
    "completed",
    "dead",
    "cancelled",
];

/// Arguments of `spool job`.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, clap::Subcommand)]
enum JobCommand {
    /// Enqueue a job.
    Enqueue(EnqueueArgs),
    /// Enqueue the jobs in FILE (JSON lines, or one JSON array; `-` reads stdin), each a
    /// `POST /v1/jobs` body, 10,000 per request; each request is all or none.
    EnqueueBatch {
        /// The file of jobs, or `-` for stdin.
        file: PathBuf,
    },
    /// Show a job: payload, result, errors per attempt and the last attempt's logs.
    Get {
        /// The job's id.
        id: String,
    },
    /// List jobs, newest first.
    List {
        /// Only jobs in this state.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STATES))]
        state: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Cancel a job that has not started running.
    Cancel {
        /// The job's id.
        id: String,
    },
    /// Requeue a dead or cancelled job.
    Retry {
        /// The job's id.
        id: String,
    },
}

/// Arguments of `spool job enqueue`.
#[derive(Debug, clap::Args)]
struct EnqueueArgs {
    /// The handler to run.
    handler: String,
    /// The payload, JSON [default: null].
    #[arg(long, value_parser = parse_json, value_name = "JSON", conflicts_with = "payload_file")]
    payload: Option<Value>,
    /// Read the payload from this file: its JSON, or its raw bytes when it is not JSON.
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
    /// The queue [default: default].
    #[arg(long)]
    queue: Option<String>,
    /// An idempotency key: the same key and payload answer the first job instead.
    #[arg(long)]
    key: Option<String>,
    /// Lower runs first [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i16>,
    /// Run after this many milliseconds.
    #[arg(long, conflicts_with = "run_at")]
    delay_ms: Option<u64>,
    /// Run at this time (RFC 3339, e.g. 2030-01-31T12:00:00Z).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    run_at: Option<DateTime<FixedOffset>>,
    /// Attempts in all [default: the handler's, else 25].
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Fuel per attempt (at most the tenant's).
    #[arg(long)]
    fuel: Option<u64>,
    /// Timeout per attempt, in milliseconds (at most the tenant's).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Memory per attempt, in MiB (at most the tenant's).
    #[arg(long)]
    memory_mb: Option<u64>,
}

/// Filters and paging of `spool job list` and `spool dead list`.
#[derive(Debug, clap::Args)]
pub(super) struct ListArgs {
    /// Only jobs of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only jobs of this handler.
    #[arg(long)]
    handler: Option<String>,
    /// Jobs per page, at most 1000 [default: 100; 1000 with --all].
    #[arg(long)]
    limit: Option<u32>,
    /// Start after this cursor (a previous page's `next_cursor`).
    #[arg(long, conflicts_with = "all")]
    cursor: Option<String>,
    /// Follow `next_cursor` to the last page and show every job.
    #[arg(long)]
    all: bool,
}

fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// What enqueueing one job did.
#[derive(Debug, Deserialize)]
struct EnqueuedView {
    id: String,
    state: String,
    duplicate: bool,
}

/// One failed attempt.
#[derive(Debug, Deserialize)]
struct AttemptError {
    attempt: u32,
    at: DateTime<Utc>,
    kind: String,
    message: String,
}

/// A job as the API answers it.
#[derive(Debug, Deserialize)]
struct JobView {
    id: String,
    handler: String,
    queue: String,
    state: String,
    attempt: u32,
    max_attempts: u32,
    priority: i16,
    idempotency_key: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    result_base64: Option<String>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    errors: Vec<AttemptError>,
    #[serde(default)]
    logs: Value,
    #[serde(default)]
    parent_id: Option<String>,
    created_at: DateTime<Utc>,
    run_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// A page of a listing, its jobs kept as they came for `--json`.
#[derive(Debug, Deserialize)]
struct Page {
    jobs: Vec<Value>,
    next_cursor: Option<String>,
}

/// Runs a `spool job` subcommand.
pub async fn run(args: JobArgs) -> anyhow::Result<()> {
    let client = args.conn.client(false)?;
    let json = args.conn.json;
    match args.command {
        JobCommand::Enqueue(e) => {
            let body = enqueue_body(e).await?;
            let answer = client.post(&["jobs"], &body).await?;
            show(&answer, json, |e: EnqueuedView| {
                let what = if e.duplicate {
                    "duplicate of"
                } else {
                    "enqueued"
                };
                output::print(&format!("{what} {} ({})\n", e.id, e.state));
            })
        }
        JobCommand::EnqueueBatch { file } => batch::enqueue_batch(&client, json, &file).await,
        JobCommand::Get { id } => {
            let answer = client.get(&["jobs", &id], &[]).await?;
            show(&answer, json, |job: JobView| output::print(&describe(&job)))
        }
        JobCommand::List { state, list } => {
            list_jobs(&client, json, &["jobs"], state.as_deref(), &list).await
        }
        JobCommand::Cancel { id } => {
            let answer = client.post(&["jobs", &id, "cancel"], &json!({})).await?;
            show(&answer, json, |s: EnqueuedState| {
                output::print(&format!("{} {}\n", s.state, s.id));
            })
        }
        JobCommand::Retry { id } => {
            let answer = client.post(&["jobs", &id, "retry"], &json!({})).await?;
            show(&answer, json, |s: EnqueuedState| {
                output::print(&format!("requeued {} ({})\n", s.id, s.state));
            })
        }
    }
}

/// A job's state after cancel or retry.
#[derive(Debug, Deserialize)]
struct EnqueuedState {
    id: String,
    state: String,
}

/// Returns the `POST /v1/jobs` body for `e`.
async fn enqueue_body(e: EnqueueArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert("handler".into(), e.handler.into());
    if let Some(payload) = e.payload {
        body.insert("payload".into(), payload);
    }
    if let Some(path) = &e.payload_file {
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(payload) => body.insert("payload".into(), payload),
            Err(_) => body.insert(
                "payload_base64".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(&bytes)
                    .into(),
            ),
        };
    }
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(name.into(), value);
        }
    };
    put("queue", e.queue.map(Value::from));
    put("idempotency_key", e.key.map(Value::from));
    put("priority", e.priority.map(Value::from));
    put("delay_ms", e.delay_ms.map(Value::from));
    put("run_at", e.run_at.map(|t| t.to_rfc3339().into()));
    put("max_attempts", e.max_attempts.map(Value::from));
    let mut limits = Map::new();
    for (name, value) in [
        ("fuel", e.fuel),
        ("timeout_ms", e.timeout_ms),
        ("memory_mb", e.memory_mb),
    ] {
        if let Some(value) = value {
            limits.insert(name.into(), value.into());
        }
    }
    if !limits.is_empty() {
        body.insert("limits".into(), limits.into());
    }
    Ok(body.into())
}

/// Lists jobs under `path` (`jobs` or `dead`): one page, or every page with `--all`.
pub(super) async fn list_jobs(
    client: &Client,
    json: bool,
    path: &[&str],
    state: Option<&str>,
    args: &ListArgs,
) -> anyhow::Result<()> {
    let limit = args
        .limit
        .or(args.all.then_some(PAGE_ALL))
        .map(|l| l.to_string());
    let mut cursor = args.cursor.clone();
    let mut jobs: Vec<Value> = Vec::new();
    let next = loop {
        let mut query: Vec<(&str, &str)> = Vec::new();
        let filters = [
            ("state", state),
            ("queue", args.queue.as_deref()),
            ("handler", args.handler.as_deref()),
            ("limit", limit.as_deref()),
            ("cursor", cursor.as_deref()),
        ];
        for (name, value) in filters {
            if let Some(value) = value {
                query.push((name, value));
            }
        }
        let answer = client.get(path, &query).await?;
        if json && !args.all {
            output::print_line(&answer.text());
            return Ok(());
        }
        let page: Page = answer.parse()?;
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) if args.all => cursor = Some(next),
            next => break next,
        }
    };
    if json {
        let all = json!({ "jobs": jobs, "next_cursor": Value::Null });
        output::print_line(&all.to_string());
        return Ok(());
    }
    let dead = path == ["dead"];
    let mut header = vec!["ID", "STATE", "HANDLER", "QUEUE", "ATTEMPT", "CREATED"];
    if dead {
        header.push("LAST ERROR");
    }
    let mut table = Table::new(&header);
    for job in jobs {
        let job: JobView = serde_json::from_value(job)
            .context("the API's answer is not what this client expects")?;
        let mut row = vec![
            job.id,
            job.state,
            job.handler,
            job.queue,
            format!("{}/{}", job.attempt, job.max_attempts),
            output::time(Some(job.created_at)),
        ];
        if dead {
            row.push(job.errors.last().map_or_else(String::new, |e| {
                output::short(&format!("{}: {}", e.kind, e.message), 60)
            }));
        }
        table.row(row);
    }
    table.print(if dead { "no dead jobs" } else { "no jobs" });
    if let Some(next) = next {
        eprintln!("more: --cursor {next} for the next page, or --all for every page");
    }
    Ok(())
}

/// Renders one job for people. Whatever a guest (or an enqueuer) wrote is escaped
/// ([`output::escape`]): it never sends a control sequence to the terminal.
fn describe(job: &JobView) -> String {
    use output::escape;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| out.push_str(&format!("{key:<10} {}\n", escape(value)));
    line("id", &job.id);
    line("handler", &job.handler);
    line("queue", &job.queue);
    let state = if job.duplicate {
        format!("{} (a duplicate of an earlier job)", job.state)
    } else {
        job.state.clone()
    };
    line("state", &state);
    line(
        "attempt",
        &format!("{} of {}", job.attempt, job.max_attempts),
    );
    line("priority", &job.priority.to_string());
    line("key", &job.idempotency_key);
    if let Some(parent) = &job.parent_id {
        line("parent", parent);
    }
    line("created", &output::time(Some(job.created_at)));
    line("run at", &output::time(Some(job.run_at)));
    line("finished", &output::time(job.finished_at));
    line(
        "payload",
        &json_or_base64(job.payload.as_ref(), job.payload_base64.as_deref(), "null"),
    );
    line(
        "result",
        &json_or_base64(job.result.as_ref(), job.result_base64.as_deref(), "-"),
    );
    if !job.errors.is_empty() {
        out.push_str("errors\n");
        for e in &job.errors {
            out.push_str(&format!(
                "  attempt {} at {}: {}: {}\n",
                e.attempt,
                output::time(Some(e.at)),
                escape(&e.kind),
                escape(&e.message)
            ));
        }
    }
    if let Some(logs) = job.logs.as_array().filter(|l| !l.is_empty()) {
        out.push_str("logs (last attempt)\n");
        for log in logs {
            let mut text = format!(
                "  +{}ms {:<5} {}",
                log["at_ms"].as_u64().unwrap_or(0),
                escape(log["level"].as_str().unwrap_or("info")),
                escape(log["message"].as_str().unwrap_or_default())
            );
            for field in log["fields"].as_array().into_iter().flatten() {
                if let [k, v] = field.as_array().map(Vec::as_slice).unwrap_or_default() {
                    let (k, v) = (k.as_str().unwrap_or("?"), v.as_str().unwrap_or("?"));
                    text.push_str(&format!(" {}={}", escape(k), escape(v)));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
    }
    out
}

/// Shows a payload or result: its JSON, compact, or the size of raw bytes.
fn json_or_base64(value: Option<&Value>, base64: Option<&str>, none: &str) -> String {
    match (value, base64) {
        (_, Some(b64)) => {
            let len = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_or(0, |b| b.len());
            format!("({len} bytes, not JSON) base64:{b64}")
        }
        (Some(value), None) => value.to_string(),
        (None, None) => none.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn enqueue_flags_become_the_request_body() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            e: EnqueueArgs,
        }
        let t = T::try_parse_from([
            "t",
            "hello",
            "--payload",
            "{\"a\":1}",
            "--queue",
            "q",
            "--key",
            "k",
            "--priority",
            "-2",
            "--max-attempts",
            "3",
            "--fuel",
            "10",
        ])
        .unwrap();
        assert_eq!(
            enqueue_body(t.e).await.unwrap(),
            json!({"handler": "hello", "payload": {"a": 1}, "queue": "q",
                   "idempotency_key": "k", "priority": -2, "max_attempts": 3,
                   "limits": {"fuel": 10}})
        );
        assert!(
            T::try_parse_from([
                "t",
                "h",
                "--delay-ms",
                "1",
                "--run-at",
                "2030-01-01T00:00:00Z"
            ])
            .is_err()
        );
        assert!(T::try_parse_from(["t", "h", "--payload", "{oops"]).is_err());
    }
}
