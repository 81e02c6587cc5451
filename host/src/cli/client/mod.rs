//! The API client: `spool tenant`, `spool handler`, `spool job`, `spool schedule` and
//! `spool dead` talk to a running Spool over HTTP (`SPOOL_URL`, `SPOOL_TOKEN`).
//!
//! Output is for people by default (aligned tables, short lines) and, with `--json`, the API's
//! JSON answer as it came, one document, for scripts. A problem answer prints
//! `error: <title>: <detail>` on stderr and exits 1; bad command-line input exits 2.
//!
//! The calls themselves are `spool-client`'s; what is here is the command line and the output.

mod batch;
mod dead;
mod handlers;
mod jobs;
mod output;
mod schedules;
mod tenants;

use std::process::ExitCode;

use spool_client::{Client, Reply};
use url::Url;

pub use dead::DeadArgs;
pub use handlers::HandlerArgs;
pub use jobs::JobArgs;
pub use schedules::ScheduleArgs;
pub use tenants::TenantArgs;

/// The URL the client talks to when neither `--url` nor `SPOOL_URL` is given.
const URL_DEFAULT: &str = "http://127.0.0.1:8080";

/// Where and how to reach the API; every client subcommand takes these.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "API options")]
pub struct Connection {
    /// The Spool API's base URL [default: http://127.0.0.1:8080].
    // No clap default: a global argument with one shows up as required in usage lines.
    #[arg(long, global = true, env = "SPOOL_URL")]
    url: Option<Url>,
    /// The bearer token [default: $SPOOL_TOKEN; $SPOOL_ADMIN_TOKEN for `spool tenant` and with
    /// --tenant].
    #[arg(long, global = true)]
    token: Option<String>,
    /// Act for this tenant with the admin token (sends `?tenant=NAME`).
    #[arg(long, global = true, value_name = "NAME")]
    tenant: Option<String>,
    /// Print the API's JSON answer as it came, one document (nothing for an empty answer).
    #[arg(long, global = true)]
    json: bool,
}

impl Connection {
    /// Returns a client for these settings; `admin` when the command needs the admin token.
    fn client(&self, admin: bool) -> Result<Client, Usage> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let wants_admin = admin || self.tenant.is_some();
        let token = match &self.token {
            Some(token) => token.clone(),
            None if admin => env("SPOOL_ADMIN_TOKEN").ok_or_else(|| {
                Usage("no admin token: set SPOOL_ADMIN_TOKEN or pass --token".into())
            })?,
            // `--tenant` is the admin acting for a tenant; a tenant's own token will do when
            // it is that tenant's.
            None if wants_admin => env("SPOOL_ADMIN_TOKEN")
                .or_else(|| env("SPOOL_TOKEN"))
                .ok_or_else(|| {
                    Usage("no token: set SPOOL_ADMIN_TOKEN (or SPOOL_TOKEN) or pass --token".into())
                })?,
            None => env("SPOOL_TOKEN")
                .ok_or_else(|| Usage("no token: set SPOOL_TOKEN or pass --token".into()))?,
        };
        let tenant = if admin { None } else { self.tenant.clone() };
        let url = match &self.url {
            Some(url) => url.clone(),
            None => Url::parse(URL_DEFAULT).expect("the default URL parses"),
        };
        Client::builder(url, token)
            .tenant(tenant)
            .user_agent(concat!("spool-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| match e {
                spool_client::Error::BadUrl(_) => Usage(format!("--url {e}")),
                e => Usage(e.to_string()),
            })
    }
}

/// Settings missing or malformed before any request is made: exit code 2, like bad flags.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Maps what a client command returned to an exit code, printing the error: 1 for anything
/// that went wrong talking to the API or reading files, 2 for missing settings.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Runs `spool tenant ...`.
pub async fn tenant(args: TenantArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(tenants::run(args).await))
}

/// Runs `spool handler ...`.
pub async fn handler(args: HandlerArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(handlers::run(args).await))
}

/// Runs `spool job ...`.
pub async fn job(args: JobArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(jobs::run(args).await))
}

/// Runs `spool schedule ...`.
pub async fn schedule(args: ScheduleArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(schedules::run(args).await))
}

/// Runs `spool dead ...`.
pub async fn dead(args: DeadArgs) -> anyhow::Result<ExitCode> {
    Ok(finish(dead::run(args).await))
}

/// Parses a command-line argument as JSON, for clap.
fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// Prints `reply`: as it came with `--json`, else parsed as `T` and shown by `human`.
fn show<T: serde::de::DeserializeOwned>(
    reply: &Reply<T>,
    json: bool,
    human: impl FnOnce(T),
) -> anyhow::Result<()> {
    if json {
        output::print_line(&reply.text());
    } else {
        human(reply.value()?);
    }
    Ok(())
}
