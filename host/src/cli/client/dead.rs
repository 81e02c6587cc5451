//! `spool dead list|retry|discard`: the dead-letter queue.

use serde_json::{Value, json};
use spool_client::types::{Discarded, Retried, Sweep};
use spool_client::{Client, Method};

use super::Connection;
use super::jobs::{ListArgs, Listing, list_jobs};
use super::output;

/// The most ids one request carries (the API's limit).
const IDS_PER_REQUEST: usize = 10_000;

/// Arguments of `spool dead`.
#[derive(Debug, clap::Args)]
pub struct DeadArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: DeadCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DeadCommand {
    /// List the dead jobs, newest first, with each one's last error.
    List(ListArgs),
    /// Requeue dead jobs: these ids, or every one of a handler and/or queue, or --all.
    Retry(Selection),
    /// Delete dead jobs for good: these ids, or every one of a handler and/or queue, or --all.
    Discard(Selection),
}

/// Which dead jobs: one of ids, a filter, or `--all`, so that nothing is redriven or deleted
/// in bulk by accident.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("selection")
        .required(true)
        .multiple(true)
        .args(["ids", "handler", "queue", "all"])
))]
struct Selection {
    /// The dead jobs' ids.
    #[arg(value_name = "ID", conflicts_with_all = ["handler", "queue", "all"])]
    ids: Vec<String>,
    /// Every dead job of this handler.
    #[arg(long)]
    handler: Option<String>,
    /// Every dead job of this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Every dead job.
    #[arg(long, conflicts_with_all = ["handler", "queue"])]
    all: bool,
}

/// What to do with the selected jobs.
#[derive(Debug, Clone, Copy)]
enum Action {
    Retry,
    Discard,
}

impl Action {
    /// The endpoint under `/v1/dead`, which is also the answer's count field's stem.
    fn path(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Discard => "discard",
        }
    }

    /// The answer's count field, which is also the word the summary uses.
    fn done(self) -> &'static str {
        match self {
            Action::Retry => "retried",
            Action::Discard => "discarded",
        }
    }
}

/// Runs a `spool dead` subcommand.
pub async fn run(args: DeadArgs) -> anyhow::Result<()> {
    let client = args.conn.client(false)?;
    let json = args.conn.json;
    match args.command {
        DeadCommand::List(list) => list_jobs(&client, json, Listing::Dead, &list).await,
        DeadCommand::Retry(sel) => select(&client, json, Action::Retry, sel).await,
        DeadCommand::Discard(sel) => select(&client, json, Action::Discard, sel).await,
    }
}

/// Applies `action` to the selected dead jobs, ids [`IDS_PER_REQUEST`] at a time.
async fn select(client: &Client, json: bool, action: Action, sel: Selection) -> anyhow::Result<()> {
    let bodies: Vec<Value> = if sel.ids.is_empty() {
        let mut filter = serde_json::Map::new();
        if let Some(handler) = sel.handler {
            filter.insert("handler".into(), handler.into());
        }
        if let Some(queue) = sel.queue {
            filter.insert("queue".into(), queue.into());
        }
        vec![filter.into()]
    } else {
        sel.ids
            .chunks(IDS_PER_REQUEST)
            .map(|ids| json!({ "ids": ids }))
            .collect()
    };
    let mut total = 0;
    let mut calls = 0;
    let mut last = None;
    for body in bodies {
        // A filter takes up to 10,000 dead jobs a call: continue where the answer says.
        let mut body = body;
        loop {
            // The ids go as they were typed: the API names one that is not an id.
            let (done, sweep, text) = match action {
                Action::Retry => {
                    let reply = client
                        .request::<Retried>(Method::POST, &["dead", action.path()])
                        .json(&body)
                        .reply()
                        .await?;
                    let Retried { retried, sweep } = reply.value()?;
                    (retried, sweep, reply.text().into_owned())
                }
                Action::Discard => {
                    let reply = client
                        .request::<Discarded>(Method::POST, &["dead", action.path()])
                        .json(&body)
                        .reply()
                        .await?;
                    let Discarded { discarded, sweep } = reply.value()?;
                    (discarded, sweep, reply.text().into_owned())
                }
            };
            total += done;
            calls += 1;
            last = Some(text);
            match sweep {
                Sweep {
                    more: true,
                    next_cursor: Some(next),
                } => body["cursor"] = json!(next),
                _ => break,
            }
        }
    }
    if json {
        match last {
            Some(text) if calls == 1 => output::print_line(&text),
            _ => output::print_line(&json!({ action.done(): total }).to_string()),
        }
        return Ok(());
    }
    let plural = if total == 1 { "" } else { "s" };
    let mut line = format!("{} {total} dead job{plural}", action.done());
    let asked = sel.ids.len() as u64;
    if asked > total {
        line.push_str(&format!(
            "; {} of the ids given are not dead jobs",
            asked - total
        ));
    }
    output::print_line(&line);
    Ok(())
}
