//! `spool tenant create|list` (admin token).

use serde_json::{Value, json};
use spool_client::Method;
use spool_client::types::{TenantList, TenantView};

use super::output::{self, Table};
use super::{Connection, parse_json, show};

/// Arguments of `spool tenant`.
#[derive(Debug, clap::Args)]
pub struct TenantArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its token (shown once).
    Create {
        /// The tenant's name: 1-64 of A-Za-z0-9._-, starting with a letter or digit.
        name: String,
        /// Limits to set, as JSON (e.g. '{"fuel": 1000000, "max_queued": 5000}'); the rest
        /// take their defaults.
        #[arg(long, value_parser = parse_json, value_name = "JSON")]
        limits: Option<Value>,
        /// An origin its handlers may call over outbound HTTP (repeatable):
        /// `https://api.example.com`, `https://*.example.com:8443`; no IP addresses.
        #[arg(long = "allow-host", value_name = "ORIGIN")]
        allowed_hosts: Vec<String>,
    },
    /// List the tenants and their limits.
    List,
}

/// Runs a `spool tenant` subcommand.
pub async fn run(args: TenantArgs) -> anyhow::Result<()> {
    let client = args.conn.client(true)?;
    let json = args.conn.json;
    match args.command {
        TenantCommand::Create {
            name,
            limits,
            allowed_hosts,
        } => {
            let mut body = json!({ "name": name, "allowed_hosts": allowed_hosts });
            if let Some(limits) = limits {
                body["limits"] = limits;
            }
            // The limits go as they were typed: the API names what it does not take.
            let reply = client
                .request::<TenantView>(Method::POST, &["tenants"])
                .json(&body)
                .reply()
                .await?;
            show(&reply, json, |tenant| {
                output::print(&format!(
                    "created tenant {}; its token, shown once:\n{}\n",
                    tenant.name,
                    tenant.token.as_deref().unwrap_or("(none)")
                ));
            })
        }
        TenantCommand::List => {
            let reply = client.tenant_list().reply().await?;
            show(&reply, json, |list: TenantList| {
                let mut table = Table::new(&[
                    "NAME",
                    "CREATED",
                    "FUEL",
                    "TIMEOUT",
                    "MEMORY",
                    "MAX QUEUED",
                    "ENQUEUE/S",
                    "HTTP",
                ]);
                for t in list.tenants {
                    table.row(vec![
                        t.name,
                        output::time(Some(t.created_at)),
                        t.limits.fuel.to_string(),
                        format!("{} ms", t.limits.timeout_ms),
                        format!("{} MiB", t.limits.memory_mb),
                        t.limits.max_queued.to_string(),
                        t.limits.enqueue_rate.to_string(),
                        // Requests per attempt, to how many allowed origins.
                        format!(
                            "{}/attempt, {} hosts",
                            t.limits.max_http_requests,
                            t.allowed_hosts.len()
                        ),
                    ]);
                }
                table.print("no tenants");
            })
        }
    }
}
