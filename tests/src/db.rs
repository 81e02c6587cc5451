//! A fresh database per test, on the server `DATABASE_URL` names (`make test` starts a private
//! one when it is unset), migrated and dropped again when the test is done.

use std::time::Duration;

use spool::store::Store;
use uuid::Uuid;

/// A migrated database of one test's own.
pub struct TestDb {
    /// Its URL, for processes the test starts.
    pub url: String,
    /// A store connected to it.
    pub store: Store,
    name: String,
    admin_url: String,
}

/// Returns `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Creates, migrates and returns a database for one test.
///
/// # Panics
///
/// When `DATABASE_URL` is unset or the server cannot be reached.
pub async fn test_db() -> TestDb {
    let admin_url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests with `make test`, which starts a private \
         PostgreSQL when there is none",
    );
    let name = format!("spool_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(&admin_url, 1)
        .await
        .expect("connecting to DATABASE_URL");
    admin
        .admin_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creating the test database");
    admin.close().await;
    let url = with_database(&admin_url, &name);
    let store = Store::connect(&url, 10)
        .await
        .expect("connecting to the test database");
    store.migrate().await.expect("migrating the test database");
    TestDb {
        url,
        store,
        name,
        admin_url,
    }
}

/// Polls until every job of `ids` (of `tenant`) is finished, or panics after `within`.
pub async fn wait_finished(store: &Store, tenant: i64, ids: &[Uuid], within: Duration) {
    crate::eventually("every job finishes", within, || async move {
        let mut pending = 0;
        for id in ids {
            let job = store.job_get(tenant, *id).await.expect("reading a job");
            if !job.state.is_finished() {
                pending += 1;
            }
        }
        if pending == 0 {
            Ok(())
        } else {
            Err(format!("{pending} jobs still pending"))
        }
    })
    .await
}

impl TestDb {
    /// Makes `key`'s done-record say that another job committed it (as if through a second
    /// path): the pending job holding the key then finishes as a duplicate.
    ///
    /// # Panics
    ///
    /// When the statement fails.
    pub async fn mark_done_by_another_job(&self, tenant: i64, key: &str) {
        let pool = sqlx::PgPool::connect(&self.url)
            .await
            .expect("connecting to the test database");
        sqlx::query(
            "UPDATE spool.idempotency SET job_id = gen_random_uuid(), done_at = now() \
             WHERE tenant_id = $1 AND key = $2",
        )
        .bind(tenant)
        .bind(key)
        .execute(&pool)
        .await
        .expect("marking the key done");
        pool.close().await;
    }

    /// Asserts that each tenant's running count, which the claim reads for `max_running`
    /// (`spool.running_counts`), equals the jobs it has running.
    ///
    /// # Panics
    ///
    /// When they differ, naming the tenants whose counts are off.
    pub async fn assert_running_counts_agree(&self) {
        let pool = sqlx::PgPool::connect(&self.url)
            .await
            .expect("connecting to the test database");
        let off: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT t.id, coalesce(c.n, 0)::bigint, coalesce(j.n, 0) \
             FROM spool.tenants t \
             LEFT JOIN (SELECT tenant_id, sum(n) AS n FROM spool.running_counts \
                        GROUP BY tenant_id) c ON c.tenant_id = t.id \
             LEFT JOIN (SELECT tenant_id, count(*) AS n FROM spool.jobs WHERE state = 'running' \
                        GROUP BY tenant_id) j ON j.tenant_id = t.id \
             WHERE coalesce(c.n, 0) <> coalesce(j.n, 0)",
        )
        .fetch_all(&pool)
        .await
        .expect("reading the running counts");
        pool.close().await;
        assert!(
            off.is_empty(),
            "running counts (tenant, counted, running jobs) disagree: {off:?}"
        );
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database(&self.admin_url, &self.name);
    }
}

/// An empty database of one test's own, owned by a role of the test's choosing, for tests of
/// what happens before and between migrations. Dropped when the test is done.
pub struct EmptyDb {
    /// Its URL as the owning role (no password: the test servers trust loopback).
    pub url: String,
    /// Its URL as the server's admin (`DATABASE_URL`'s role).
    pub admin_db_url: String,
    name: String,
    admin_url: String,
}

/// Creates an empty database owned by `role`, creating the role (a login role) when the server
/// has none of that name.
///
/// # Panics
///
/// When `DATABASE_URL` is unset or the server cannot be reached.
pub async fn empty_db_owned_by(role: &str) -> EmptyDb {
    let admin_url = std::env::var("DATABASE_URL").expect("DATABASE_URL is set");
    let name = format!("spool_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(&admin_url, 1)
        .await
        .expect("connecting to DATABASE_URL");
    // Tests create the role concurrently: whoever loses the race finds it made.
    admin
        .admin_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .await
        .expect("creating the role");
    admin
        .admin_execute(&format!("CREATE DATABASE {name} OWNER {role}"))
        .await
        .expect("creating the test database");
    admin.close().await;
    let mut url = url::Url::parse(&with_database(&admin_url, &name)).expect("DATABASE_URL");
    url.set_username(role).expect("a URL with a user");
    url.set_password(None).expect("a URL with a password");
    EmptyDb {
        url: url.to_string(),
        admin_db_url: with_database(&admin_url, &name),
        name,
        admin_url,
    }
}

impl Drop for EmptyDb {
    fn drop(&mut self) {
        drop_database(&self.admin_url, &self.name);
    }
}

/// Drops database `name` on the server `admin_url` names, ending whoever is still connected.
fn drop_database(admin_url: &str, name: &str) {
    let admin_url = admin_url.to_string();
    let name = name.to_string();
    // Drop runs inside the test's runtime, which is blocked here: clean up on a thread with
    // a runtime of its own, touching nothing of the test's (its pool needs the blocked
    // runtime). WITH (FORCE) ends the test's remaining sessions.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for clean-up");
        rt.block_on(async {
            if let Ok(admin) = Store::connect(&admin_url, 1).await {
                let _ = admin
                    .admin_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                admin.close().await;
            }
        });
    })
    .join();
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }
}
