//! The second start: migrating a database that is already migrated, as a role named `spool`
//! and under whatever `search_path` the role or database sets, keeps working and keeps the
//! data; a database an older Spool left with two copies of its migration record is repaired.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool::model::TenantLimitSpec;
use spool::store::Store;
use spool_tests::db::{EmptyDb, empty_db_owned_by};
use spool_tests::{cache_dir, spool_bin, terminate};

/// Runs `spool migrate` against `url` and asserts that it succeeds.
fn migrate(url: &str) {
    let output = Command::new(spool_bin())
        .arg("migrate")
        .env("DATABASE_URL", url)
        .output()
        .expect("running spool migrate");
    assert!(
        output.status.success(),
        "spool migrate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Returns the schemas holding a `_sqlx_migrations` table, and how many rows each has.
async fn bookkeeping(db: &EmptyDb) -> Vec<(String, i64)> {
    let pool = sqlx::PgPool::connect(&db.admin_db_url).await.unwrap();
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for schema in schemas {
        let rows: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{schema}\"._sqlx_migrations"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        out.push((schema, rows));
    }
    pool.close().await;
    out
}

/// Runs `statement` on `db` as the server's admin.
async fn as_admin(db: &EmptyDb, statement: &str) {
    let admin = Store::connect(&db.admin_db_url, 1).await.unwrap();
    admin.admin_execute(statement).await.unwrap();
    admin.close().await;
}

fn migrations_count() -> i64 {
    std::fs::read_dir(spool_tests::workspace_root().join("migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64
}

#[tokio::test]
async fn spool_migrate_twice_as_a_role_named_spool_keeps_the_data() {
    let db = empty_db_owned_by("spool").await;
    migrate(&db.url);
    let store = Store::connect(&db.url, 2).await.unwrap();
    store
        .tenant_create("kept", &TenantLimitSpec::default(), None)
        .await
        .unwrap();
    migrate(&db.url);
    migrate(&db.url);
    assert_eq!(store.tenant_get("kept").await.unwrap().name, "kept");
    assert!(store.ready().await.unwrap());
    store.close().await;
    assert_eq!(
        bookkeeping(&db).await,
        [("public".to_string(), migrations_count())]
    );
}

#[tokio::test]
async fn migrations_ignore_the_search_path_the_role_or_database_sets() {
    for setting in [
        "ALTER ROLE spool IN DATABASE {db} SET search_path = spool, public",
        "ALTER DATABASE {db} SET search_path = nowhere",
        "ALTER DATABASE {db} SET search_path = spool",
    ] {
        let db = empty_db_owned_by("spool").await;
        let name = db.url.rsplit('/').next().unwrap().to_string();
        as_admin(&db, &setting.replace("{db}", &name)).await;
        migrate(&db.url);
        let store = Store::connect(&db.url, 2).await.unwrap();
        store
            .tenant_create("kept", &TenantLimitSpec::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{setting}: {e}"));
        migrate(&db.url);
        assert_eq!(store.tenant_get("kept").await.unwrap().name, "kept");
        store.close().await;
        assert_eq!(
            bookkeeping(&db).await,
            [("public".to_string(), migrations_count())],
            "{setting}"
        );
    }
}

#[tokio::test]
async fn a_stray_empty_copy_of_the_migration_record_is_dropped() {
    let db = empty_db_owned_by("spool").await;
    migrate(&db.url);
    // What an older Spool's second migrate left behind before it failed.
    as_admin(
        &db,
        "CREATE TABLE spool._sqlx_migrations (LIKE public._sqlx_migrations INCLUDING ALL); \
         ALTER TABLE spool._sqlx_migrations OWNER TO spool",
    )
    .await;
    migrate(&db.url);
    assert_eq!(
        bookkeeping(&db).await,
        [("public".to_string(), migrations_count())]
    );
}

#[tokio::test]
async fn a_migration_record_kept_in_schema_spool_moves_to_public_and_others_stay() {
    let db = empty_db_owned_by("spool").await;
    migrate(&db.url);
    as_admin(
        &db,
        "ALTER TABLE public._sqlx_migrations SET SCHEMA spool; \
         CREATE SCHEMA other; \
         CREATE TABLE other._sqlx_migrations (LIKE spool._sqlx_migrations INCLUDING ALL); \
         INSERT INTO other._sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (1, 'another application', true, '\\x00', 1)",
    )
    .await;
    migrate(&db.url);
    assert_eq!(
        bookkeeping(&db).await,
        [
            ("other".to_string(), 1),
            ("public".to_string(), migrations_count())
        ]
    );
}

/// Returns a loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const ADMIN: &str = "restart-test-admin-token-0123456789";

/// Starts `spool serve --migrate` on `url` at `port` and waits until it is ready.
#[allow(
    clippy::zombie_processes,
    reason = "the child is handed to the caller, whose `stop` waits for it"
)]
async fn serve(url: &str, port: u16) -> std::process::Child {
    let mut child = Command::new(spool_bin())
        .args(["serve", "--migrate", "--no-worker", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", url)
        .env("SPOOL_ADMIN_TOKEN", ADMIN)
        .env("SPOOL_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting spool serve");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return child;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("spool serve never became ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(child: std::process::Child) {
    let status = terminate(child).await;
    assert!(status.success(), "spool serve exited with {status}");
}

#[tokio::test]
async fn spool_serve_with_migrate_restarts_as_a_role_named_spool() {
    let db = empty_db_owned_by("spool").await;
    let port = free_port();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    let first = serve(&db.url, port).await;
    let created = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "survivor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    stop(first).await;

    let second = serve(&db.url, port).await;
    let tenants: Value = http
        .get(format!("{base}/v1/tenants"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stop(second).await;
    let names: Vec<&str> = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["survivor"]);
}
