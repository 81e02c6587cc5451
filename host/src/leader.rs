//! Leader election by a lease row in PostgreSQL (`spool.lease_acquire`): at most one holder
//! per lease name across all nodes, renewed every third of its time to live, and handed over
//! at shutdown rather than left to lapse. Maintenance and the alerts each lead under a lease of
//! their own.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Holds or competes for the lease `name` as `node` until `shutdown`, telling `leader` whether
/// this node leads after every renewal.
pub async fn lead(
    store: &Store,
    name: &str,
    node: &str,
    ttl: Duration,
    shutdown: &CancellationToken,
    leader: watch::Sender<bool>,
) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                if *leader.borrow() {
                    // Hand leadership over now rather than when the lease lapses.
                    let _ = store.lease_release(name, node).await;
                }
                return;
            }
            _ = tick.tick() => {
                let now = match store.lease_acquire(name, node, ttl).await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::warn!(lease = name, error = %e, "renewing a leader lease failed");
                        false
                    }
                };
                if leader.send_replace(now) != now {
                    tracing::info!(lease = name, node, leader = now, "leadership changed");
                }
            }
        }
    }
}
