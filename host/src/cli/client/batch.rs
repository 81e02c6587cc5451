//! `spool job enqueue-batch`: jobs from a file of JSON lines or a JSON array, posted in
//! chunks behind a progress bar, slowing down when the tenant's enqueue rate refuses them.

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use spool_client::types::{BatchView, EnqueuedView};
use spool_client::{Client, Method, StatusCode};

use super::output;

/// The most jobs one `POST /v1/jobs/batch` carries (the API's limit).
const BATCH: usize = 10_000;
/// How long a batch enqueue keeps retrying requests refused with 429 before giving up.
const RATE_PATIENCE: Duration = Duration::from_secs(60);
/// The first pause after a 429; it doubles up to [`RATE_PAUSE_MAX`].
const RATE_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause between retries after a 429.
const RATE_PAUSE_MAX: Duration = Duration::from_secs(4);

/// Returns the jobs in `text`: one JSON array, or one JSON object per line (blank lines
/// skipped). `origin` names the file in errors.
fn parse_jobs(text: &str, origin: &str) -> anyhow::Result<Vec<Value>> {
    let not_a_job = |at: String| {
        anyhow::anyhow!(
            "{origin}: {at}: a job is a JSON object like {{\"handler\": \"NAME\", \"payload\": ...}}"
        )
    };
    if text.trim_start().starts_with('[') {
        let jobs: Vec<Value> = serde_json::from_str(text)
            .with_context(|| format!("{origin}: not a JSON array of jobs"))?;
        if let Some(i) = jobs.iter().position(|j| !j.is_object()) {
            return Err(not_a_job(format!("item {i}")));
        }
        return Ok(jobs);
    }
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let job: Value = serde_json::from_str(line)
            .with_context(|| format!("{origin}: line {}: not JSON", i + 1))?;
        if !job.is_object() {
            return Err(not_a_job(format!("line {}", i + 1)));
        }
        jobs.push(job);
    }
    Ok(jobs)
}

/// Enqueues the jobs in `file`, [`BATCH`] per request, behind a progress bar.
pub(super) async fn enqueue_batch(client: &Client, json: bool, file: &Path) -> anyhow::Result<()> {
    let (text, origin) = if file == Path::new("-") {
        let text = tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin()))
            .await
            .context("reading stdin")?
            .context("reading stdin")?;
        (text, "stdin".to_string())
    } else {
        let text = tokio::fs::read_to_string(file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        (text, file.display().to_string())
    };
    let jobs = parse_jobs(&text, &origin)?;
    if jobs.is_empty() {
        bail!("{origin}: no jobs in it");
    }
    let total = jobs.len();
    let bar = if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "enqueueing [{bar:30}] {pos}/{len} jobs {per_sec} {eta} {msg}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar
    };
    let sent = send_chunks(client, &jobs, &bar).await;
    bar.finish_and_clear();
    let enqueued = sent?;
    if json {
        output::print_line(&json!({ "jobs": enqueued }).to_string());
        return Ok(());
    }
    let duplicates = enqueued.iter().filter(|e| e.duplicate).count();
    let fresh = enqueued.len() - duplicates;
    let plural = if fresh == 1 { "" } else { "s" };
    let mut line = format!("enqueued {fresh} job{plural}");
    if duplicates > 0 {
        line.push_str(&format!(
            " ({duplicates} more were duplicates of earlier jobs)"
        ));
    }
    output::print_line(&line);
    Ok(())
}

/// Posts `jobs` to `/v1/jobs/batch`, [`BATCH`] at a time, and returns what the API answered
/// for each, in order. The jobs go as they were written: the API names what it does not take. A 429 (the tenant's enqueue rate, or a batch larger than that rate
/// allows at once) halves the chunk and retries it after a pause, until [`RATE_PATIENCE`]
/// passes without progress: a refused request enqueued nothing, so sending it again is safe.
async fn send_chunks(
    client: &Client,
    jobs: &[Value],
    bar: &ProgressBar,
) -> anyhow::Result<Vec<EnqueuedView>> {
    let total = jobs.len();
    let mut enqueued: Vec<EnqueuedView> = Vec::with_capacity(total);
    let mut size = BATCH;
    let mut pause = RATE_PAUSE;
    let mut stalled: Option<Instant> = None;
    while enqueued.len() < total {
        let start = enqueued.len();
        let chunk = &jobs[start..(start + size).min(total)];
        let reply = match client
            .request::<BatchView>(Method::POST, &["jobs", "batch"])
            .json(&json!({ "jobs": chunk }))
            .reply()
            .await
        {
            Err(e) if too_many(&e) && stalled.is_none_or(|at| at.elapsed() < RATE_PATIENCE) => {
                stalled.get_or_insert_with(Instant::now);
                bar.set_message("(rate-limited: slowing down)");
                size = (size / 2).max(1);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RATE_PAUSE_MAX);
                continue;
            }
            reply => reply.with_context(|| {
                if start == 0 {
                    return "no job was enqueued".to_string();
                }
                format!(
                    "jobs {start}-{} of {total} were not enqueued, the {start} before them were \
                     (jobs[i] below counts from {start})",
                    start + chunk.len() - 1
                )
            })?,
        };
        let page = reply.value()?;
        if page.jobs.len() != chunk.len() {
            bail!(
                "the API answered {} jobs for a batch of {}",
                page.jobs.len(),
                chunk.len()
            );
        }
        enqueued.extend(page.jobs);
        bar.inc(chunk.len() as u64);
        bar.set_message("");
        stalled = None;
        pause = RATE_PAUSE;
    }
    Ok(enqueued)
}

/// Tells whether `e` is a 429 answer.
fn too_many(e: &spool_client::Error) -> bool {
    matches!(
        e,
        spool_client::Error::Problem { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_read_from_json_lines_or_an_array() {
        let lines = "{\"handler\":\"a\"}\n\n  {\"handler\":\"b\"}\n";
        assert_eq!(parse_jobs(lines, "f").unwrap().len(), 2);
        let array = " [{\"handler\":\"a\"}, {\"handler\":\"b\"}, {\"handler\":\"c\"}]";
        assert_eq!(parse_jobs(array, "f").unwrap().len(), 3);
        assert_eq!(parse_jobs("", "f").unwrap().len(), 0);
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = parse_jobs("{\"handler\":\"a\"}\n{oops\n", "jobs.jsonl").unwrap_err();
        assert!(
            format!("{e:#}").starts_with("jobs.jsonl: line 2: not JSON"),
            "{e:#}"
        );
        let e = parse_jobs("[{}, 3]", "f").unwrap_err();
        assert!(e.to_string().contains("item 1"), "{e}");
        let e = parse_jobs("{}\n\"x\"\n", "f").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
