//! `spool job enqueue|enqueue-batch|get|list|cancel|retry`, and the job listing `spool dead
//! list` shares.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};
use spool_client::Client;
use spool_client::types::{JobRequest, JobView, LimitSpec, ListQuery};

use super::batch;
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

/// Runs a `spool job` subcommand.
pub async fn run(args: JobArgs) -> anyhow::Result<()> {
    let client = args.conn.client(false)?;
    let json = args.conn.json;
    match args.command {
        JobCommand::Enqueue(e) => {
            let job = enqueue_body(e).await?;
            let reply = client.job_enqueue(&job).reply().await?;
            show(&reply, json, |e| {
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
            let reply = client.job_get(&id).reply().await?;
            show(&reply, json, |job| output::print(&describe(&job)))
        }
        JobCommand::List { state, list } => {
            list_jobs(&client, json, Listing::Jobs(state), &list).await
        }
        JobCommand::Cancel { id } => {
            let reply = client.job_cancel(&id).reply().await?;
            show(&reply, json, |s| {
                output::print(&format!("{} {}\n", s.state, s.id));
            })
        }
        JobCommand::Retry { id } => {
            let reply = client.job_retry(&id).reply().await?;
            show(&reply, json, |s| {
                output::print(&format!("requeued {} ({})\n", s.id, s.state));
            })
        }
    }
}

/// Returns the `POST /v1/jobs` body for `e`.
async fn enqueue_body(e: EnqueueArgs) -> anyhow::Result<JobRequest> {
    let mut job = JobRequest::new(e.handler);
    if let Some(payload) = &e.payload {
        job = job.with_payload(payload);
    }
    if let Some(path) = &e.payload_file {
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(payload) => job = job.with_payload(&payload),
            Err(_) => {
                job.payload_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&bytes))
            }
        };
    }
    let limits = LimitSpec {
        fuel: e.fuel,
        timeout_ms: e.timeout_ms,
        memory_mb: e.memory_mb,
    };
    Ok(JobRequest {
        queue: e.queue,
        idempotency_key: e.key,
        priority: e.priority,
        delay_ms: e.delay_ms,
        run_at: e.run_at.map(|t| t.with_timezone(&Utc)),
        max_attempts: e.max_attempts,
        limits: (limits != LimitSpec::default()).then_some(limits),
        ..job
    })
}

/// Which jobs `spool job list` or `spool dead list` lists.
#[derive(Debug)]
pub(super) enum Listing {
    /// `GET /v1/jobs`, in this state or any.
    Jobs(Option<String>),
    /// `GET /v1/dead`.
    Dead,
}

/// Lists jobs (`spool job list`) or dead jobs (`spool dead list`): one page, or every page
/// with `--all`.
pub(super) async fn list_jobs(
    client: &Client,
    json: bool,
    listing: Listing,
    args: &ListArgs,
) -> anyhow::Result<()> {
    let (state, dead) = match listing {
        Listing::Jobs(state) => (state, false),
        Listing::Dead => (None, true),
    };
    let mut query = ListQuery {
        state,
        queue: args.queue.clone(),
        handler: args.handler.clone(),
        limit: args.limit.or(args.all.then_some(PAGE_ALL)),
        cursor: args.cursor.clone(),
        tenant: None,
    };
    let mut jobs: Vec<JobView> = Vec::new();
    let next = loop {
        let reply = if dead {
            client.dead_list(&query).reply().await?
        } else {
            client.job_list(&query).reply().await?
        };
        if json && !args.all {
            output::print_line(&reply.text());
            return Ok(());
        }
        let page = reply.value()?;
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) if args.all => query.cursor = Some(next),
            next => break next,
        }
    };
    if json {
        let all = json!({ "jobs": jobs, "next_cursor": Value::Null });
        output::print_line(&all.to_string());
        return Ok(());
    }
    let mut header = vec!["ID", "STATE", "HANDLER", "QUEUE", "ATTEMPT", "CREATED"];
    if dead {
        header.push("LAST ERROR");
    }
    let mut table = Table::new(&header);
    for job in jobs {
        let mut row = vec![
            job.id.to_string(),
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
    line("id", &job.id.to_string());
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
        line("parent", &parent.to_string());
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
            serde_json::to_value(enqueue_body(t.e).await.unwrap()).unwrap(),
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
