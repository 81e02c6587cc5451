//! `spool handler upload|list|get|delete`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use spool_client::types::{HandlerDetail, HandlerList};
use spool_client::{Client, StatusCode};
use tokio::io::{AsyncRead, ReadBuf};

use super::output::{self, Table};
use super::{Connection, show};
use crate::cli::project;

/// The size of each chunk of an upload read from the file.
const CHUNK_BYTES: usize = 64 << 10;

/// Arguments of `spool handler`.
#[derive(Debug, clap::Args)]
pub struct HandlerArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: HandlerCommand,
}

#[derive(Debug, clap::Subcommand)]
enum HandlerCommand {
    /// Upload a component as the handler's new version; the server validates and compiles it
    /// first, and jobs enqueued from then on run it. Given a handler project's folder, builds
    /// it first (`spool build`). A `spool.toml` beside the component (or in the folder) with
    /// `[[schedule]]` tables creates or updates those schedules of the handler.
    Upload {
        /// The handler's name.
        name: String,
        /// The component (`.wasm`), or a handler project's folder.
        file: PathBuf,
    },
    /// List the handlers.
    List,
    /// Show a handler and its versions.
    Get {
        /// The handler's name.
        name: String,
    },
    /// Delete a handler and its versions; its pending jobs fail when they run.
    Delete {
        /// The handler's name.
        name: String,
    },
}

/// Runs a `spool handler` subcommand.
pub async fn run(args: HandlerArgs) -> anyhow::Result<()> {
    let client = args.conn.client(false)?;
    let json = args.conn.json;
    match args.command {
        HandlerCommand::Upload { name, file } => {
            let (component, dir) = if file.is_dir() {
                let project = file.clone();
                let built =
                    tokio::task::spawn_blocking(move || project::build_project(&project)).await??;
                (built, file)
            } else {
                let dir = match file.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                (file, dir)
            };
            upload(&client, json, &name, &component).await?;
            super::schedules::apply_manifest(&client, json, &dir, &name).await?;
            Ok(())
        }
        HandlerCommand::List => {
            let reply = client.handler_list().reply().await?;
            show(&reply, json, |list: HandlerList| {
                let mut table = Table::new(&["NAME", "VERSION", "SIZE", "DIGEST", "UPDATED"]);
                for h in list.handlers {
                    table.row(vec![
                        h.name,
                        h.version.to_string(),
                        output::bytes(h.size),
                        digest(&h.digest),
                        output::time(h.updated_at),
                    ]);
                }
                table.print("no handlers");
            })
        }
        HandlerCommand::Get { name } => {
            let reply = client.handler_get(&name).reply().await?;
            show(&reply, json, |h: HandlerDetail| {
                let c = &h.current;
                output::print(&format!(
                    "{} v{} ({}, {}), updated {}\n\n",
                    c.name,
                    c.version,
                    digest(&c.digest),
                    output::bytes(c.size),
                    output::time(c.updated_at)
                ));
                let mut table = Table::new(&["VERSION", "SIZE", "DIGEST", "CREATED"]);
                for v in h.versions {
                    table.row(vec![
                        v.version.to_string(),
                        output::bytes(v.size),
                        v.digest,
                        output::time(Some(v.created_at)),
                    ]);
                }
                table.print("no versions");
            })
        }
        HandlerCommand::Delete { name } => {
            let reply = client.handler_delete(&name).reply().await?;
            if json {
                // 204: nothing to print, as documented for --json.
                if !reply.body.is_empty() {
                    output::print_line(&reply.text());
                }
            } else {
                output::print(&format!("deleted handler {name}\n"));
            }
            Ok(())
        }
    }
}

/// Streams `file` to `PUT /v1/handlers/{name}` behind a progress bar (on a terminal, without
/// `--json`), then shows what the server stored.
async fn upload(client: &Client, json: bool, name: &str, file: &Path) -> anyhow::Result<()> {
    let opened = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let meta = opened
        .metadata()
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", file.display());
    }
    let len = meta.len();
    let bar = upload_bar(json, len, name);
    let reader = Counted {
        inner: opened,
        bar: bar.clone(),
    };
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        reader,
        CHUNK_BYTES,
    ));
    let reply = client.handler_upload(name, body, len).reply().await;
    bar.finish_and_clear();
    let reply = reply?;
    let created = reply.status == StatusCode::CREATED;
    show(&reply, json, |h| {
        let what = if created {
            "uploaded"
        } else {
            "unchanged: already the current version,"
        };
        output::print(&format!(
            "{what} {} v{} ({}, {})\n",
            h.name,
            h.version,
            digest(&h.digest),
            output::bytes(h.size)
        ));
    })
}

/// Returns the bar an upload of `len` bytes shows on stderr: hidden with `--json` or when
/// stderr is not a terminal.
fn upload_bar(json: bool, len: u64, name: &str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("uploading {name}"));
    bar
}

/// A reader that moves a progress bar along as the body is read, and turns it into a spinner
/// once it is all sent: the server validates and compiles before it answers.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let read = buf.filled().len() - before;
            if read > 0 {
                self.bar.inc(read as u64);
            } else if buf.remaining() > 0 && !self.bar.is_hidden() {
                self.bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .expect("a valid progress template"),
                );
                self.bar
                    .set_message("sent; the server is validating and compiling it");
                self.bar.enable_steady_tick(Duration::from_millis(120));
            }
        }
        poll
    }
}

/// Shortens a hex SHA-256 to `sha256:` and its first 12 digits.
fn digest(hex: &str) -> String {
    format!("sha256:{}", hex.get(..12).unwrap_or(hex))
}
