//! The dashboard in a real browser: Spool serves it in-process over a fresh database with a real
//! worker, headless Chromium (driven through chromedriver's WebDriver) signs in, and what the
//! page shows is checked against the JSON API. Needs Debian's `chromium` and `chromium-driver`
//! (`make browser` installs them); without them the test fails rather than skips.

use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};
use spool::alerts::AlertsConfig;
use spool::model::{JobState, NewJob};
use spool_tests::background;
use spool_tests::server::{ADMIN_TOKEN, TestServer};
use spool_tests::{components_dir, workspace_root};

/// How long anything the test waits for may take: the page refreshes every 3 s.
const PATIENCE: Duration = Duration::from_secs(60);

/// Spool in-process: the API on a loopback port, a worker working `default` and `orders` and
/// maintenance, one database.
struct Spool {
    server: TestServer,
}

impl Spool {
    async fn start() -> Spool {
        let worker = background::Config {
            queues: vec!["default".into(), "orders".into()],
            slots: 4,
            ..background::Config::default()
        };
        Spool {
            server: TestServer::start_with(Some(worker)).await,
        }
    }

    /// Its base URL.
    fn base(&self) -> &str {
        &self.server.url
    }

    async fn stop(self) {
        self.server.stop().await;
    }

    /// Calls the API as `token` and returns the JSON answer, panicking on an error status.
    async fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let verb = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let (status, answer) = self.server.call(verb, path, token, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status}: {answer}"
        );
        answer
    }

    async fn upload(&self, token: &str, name: &str, crate_name: &str) {
        let (status, answer) = self.server.upload(token, name, crate_name).await;
        assert!(
            (200..300).contains(&status),
            "uploading {name}: {status}: {answer}"
        );
    }
}

/// chromedriver on a loopback port, killed when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns the first of `names` found on `PATH` or in `/usr/bin` and `/usr/lib/chromium`.
fn find_program(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .chain(["/usr/bin", "/usr/lib/chromium"])
        .filter(|d| !d.is_empty());
    let dirs: Vec<&str> = dirs.collect();
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

async fn start_chromedriver() -> (Chromedriver, String) {
    let missing = "install Debian's chromium and chromium-driver packages: `make browser` (or \
                   `apt-get install -y chromium chromium-driver`)";
    let driver = find_program(&["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver is not installed: {missing}"));
    let browser = find_program(&["chromium", "chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("chromium is not installed: {missing}"));
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {driver}: {e}"));
    let driver = Chromedriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Ready when its status endpoint says so.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && let Ok(status) = r.json::<Value>().await
            && status["value"]["ready"] == json!(true)
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (driver, browser)
}

async fn open_browser(driver: &Chromedriver, browser: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1440,900",
                "--force-device-scale-factor=1",
                "--lang=en-GB",
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("opening headless {browser} through chromedriver: {e}"))
}

/// Polls `check` until it returns `Some`, or panics with `what` and the last value seen.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{what}: still {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

type Counts = BTreeMap<String, BTreeMap<String, i64>>;

/// The counts per queue and state in a `GET /v1/queues` answer.
fn api_counts(queues: &Value) -> Counts {
    queues["queues"]
        .as_array()
        .expect("queues is a list")
        .iter()
        .map(|q| {
            let counts = JobState::ALL
                .iter()
                .map(|s| {
                    let s = s.as_str();
                    (s.to_string(), q["counts"][s].as_i64().unwrap_or(0))
                })
                .collect();
            (q["name"].as_str().unwrap().to_string(), counts)
        })
        .collect()
}

/// The throughput per queue in a `GET /v1/queues` answer, as the page shows them.
fn api_rates(queues: &Value) -> BTreeMap<String, (f64, f64)> {
    queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap().to_string(),
                (
                    q["completed_per_min"].as_f64().unwrap(),
                    q["failed_per_min"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

/// What the overview table shows, read from its data attributes.
async fn page_overview(browser: &Client) -> (Counts, BTreeMap<String, (f64, f64)>) {
    let read = browser
        .execute(
            r#"return [...document.querySelectorAll('#queues tbody tr[data-queue]')].map(tr => ({
                 name: tr.dataset.queue,
                 counts: Object.fromEntries([...tr.querySelectorAll('td[data-state]')]
                   .map(td => [td.dataset.state, Number(td.dataset.count)])),
                 completed: Number(tr.querySelector('[data-metric=completed_per_min]').dataset.value),
                 failed: Number(tr.querySelector('[data-metric=failed_per_min]').dataset.value),
               }));"#,
            vec![],
        )
        .await
        .expect("reading the overview");
    let rows = read.as_array().expect("a list of rows");
    let counts = rows
        .iter()
        .map(|r| {
            let counts = r["counts"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(s, n)| (s.clone(), n.as_i64().unwrap()))
                .collect();
            (r["name"].as_str().unwrap().to_string(), counts)
        })
        .collect();
    let rates = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                (
                    r["completed"].as_f64().unwrap(),
                    r["failed"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    (counts, rates)
}

/// Waits until the overview shows what `GET /v1/queues` answers, and returns that.
async fn overview_matches_api(spool: &Spool, browser: &Client, token: &str) -> Counts {
    eventually("the overview matches GET /v1/queues", || async {
        let api = spool.call(token, "GET", "/v1/queues", None).await;
        let (counts, rates) = page_overview(browser).await;
        if counts == api_counts(&api) && rates == api_rates(&api) {
            Ok(counts)
        } else {
            Err(format!(
                "page {counts:?} {rates:?}, API {:?} {:?}",
                api_counts(&api),
                api_rates(&api)
            ))
        }
    })
    .await
}

/// Waits until the overview lists the firing alerts `GET /v1/alerts` answers, and its badge
/// counts them.
async fn firing_alerts_match_api(spool: &Spool, browser: &Client, token: &str) {
    let api = spool.call(token, "GET", "/v1/alerts", None).await;
    let mut firing: Vec<(String, String)> = api["alerts"]
        .as_array()
        .expect("alerts is a list")
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            let queue = a["queue"].as_str().unwrap_or_default().to_string();
            (a["rule"].as_str().unwrap().to_string(), queue)
        })
        .collect();
    firing.sort();
    assert!(!firing.is_empty(), "no alert fires: {api}");
    eventually("the overview lists the firing alerts", || async {
        let shown = browser
            .execute(
                r#"return {
                     alerts: [...document.querySelectorAll('#overview-alerts li.alert')]
                       .map(li => [li.dataset.rule, li.dataset.queue]),
                     badge: Number(document.querySelector('#alerts-badge').dataset.count),
                   };"#,
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut alerts: Vec<(String, String)> =
            serde_json::from_value(shown["alerts"].clone()).map_err(|e| e.to_string())?;
        alerts.sort();
        if alerts == firing && shown["badge"] == json!(firing.len()) {
            Ok(())
        } else {
            Err(format!("page {shown}, API {firing:?}"))
        }
    })
    .await;
}

async fn find(browser: &Client, css: &str) -> Element {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} on the page: {e}"))
}

async fn visible(browser: &Client, css: &str) -> bool {
    match browser.find(Locator::Css(css)).await {
        Ok(e) => e.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/")).await.expect("opening /");
    let field = find(browser, "#token").await;
    eventually("the sign-in form shows", || async {
        if visible(browser, "#token").await {
            Ok(())
        } else {
            Err("hidden".to_string())
        }
    })
    .await;
    field.send_keys(token).await.expect("typing the token");
    find(browser, "#login-submit")
        .await
        .click()
        .await
        .expect("signing in");
    find(browser, "body[data-signed-in] #queues[data-loaded]").await;
}

/// Saves the overview as `target/dashboard.png` and, when it is missing or
/// `SPOOL_UPDATE_SCREENSHOT` is set, as `docs/dashboard.png`, the README's picture (kept from
/// changing on every run, since its clock and job times always differ).
async fn save_screenshot(browser: &Client) {
    let png = browser.screenshot().await.expect("a screenshot");
    // target/wasm32-wasip2/release → target/
    let components = components_dir();
    let target = components.ancestors().nth(2).unwrap().join("dashboard.png");
    std::fs::write(&target, &png).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
    let docs = workspace_root().join("docs").join("dashboard.png");
    if !docs.exists() || std::env::var_os("SPOOL_UPDATE_SCREENSHOT").is_some() {
        std::fs::create_dir_all(docs.parent().unwrap()).expect("creating docs/");
        std::fs::write(&docs, &png).unwrap_or_else(|e| panic!("{}: {e}", docs.display()));
    }
}

#[tokio::test]
async fn the_dashboard_shows_what_the_api_says_and_retries_a_dead_job() {
    let spool = Spool::start().await;
    let db = &spool.server.db;

    // A tenant, its handlers and its jobs, through the API.
    let tenant = spool
        .call(
            ADMIN_TOKEN,
            "POST",
            "/v1/tenants",
            Some(json!({"name": "acme"})),
        )
        .await;
    let token = tenant["token"]
        .as_str()
        .expect("a tenant token")
        .to_string();
    for (name, crate_name) in [
        ("hello", "hello"),
        ("fulfil-order", "fulfil-order"),
        ("send-receipt", "send-receipt"),
        ("hostile", "hostile"),
    ] {
        spool.upload(&token, name, crate_name).await;
    }
    let order = |id: &str, extra: Value| {
        let mut payload = json!({"order_id": id, "amount_cents": 1250, "email": "ada@example.com"});
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        payload
    };
    let mut jobs = vec![];
    for i in 0..8 {
        jobs.push(json!({"handler": "hello", "payload": {"greeting": i}}));
    }
    // Dead at once: a permanent failure, and a trap on its only attempt.
    jobs.push(json!({"handler": "fulfil-order", "queue": "orders",
                     "payload": order("A-poison", json!({"poison": true}))}));
    jobs.push(json!({"handler": "hostile", "payload": {"action": "panic"}, "max_attempts": 1}));
    // Dead after its only attempt failed; retried from the dashboard, it then succeeds.
    jobs.push(
        json!({"handler": "fulfil-order", "queue": "orders", "max_attempts": 1,
                     "payload": order("A-retry", json!({"fail_times": 1}))}),
    );
    let enqueued = spool
        .call(
            &token,
            "POST",
            "/v1/jobs/batch",
            Some(json!({ "jobs": jobs })),
        )
        .await;
    let to_retry = enqueued["jobs"][10]["id"].as_str().unwrap().to_string();
    // Retrying: fails every attempt, with an hour's backoff (the API has no backoff knob, so
    // this one goes through the store).
    let acme = db.store.tenant_get("acme").await.expect("the tenant");
    let mut flaky = NewJob::json(
        "fulfil-order",
        &order("A-flaky", json!({"fail_times": 100})),
    );
    flaky.queue = Some("orders".into());
    flaky.backoff = Some((Duration::from_secs(3600), Duration::from_secs(3600)));
    db.store
        .job_enqueue_many(acme.id, &[flaky], None)
        .await
        .expect("enqueueing the flaky job");

    // Settled: 8 completed, 3 dead, 1 retryable.
    eventually("the jobs settle", || async {
        let counts = api_counts(&spool.call(&token, "GET", "/v1/queues", None).await);
        let total = |state: &str| counts.values().map(|c| c[state]).sum::<i64>();
        let settled = total("completed") == 8
            && total("dead") == 3
            && total("retryable") == 1
            && total("available") + total("running") + total("scheduled") == 0;
        if settled {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;

    // Dead letters on both queues: the dead-letter growth alert fires for each, once
    // maintenance has folded the counters the rules read.
    let alerts = spool::alerts::Alerts::new(AlertsConfig::default(), db.store.clone())
        .expect("the alerts service");
    eventually("the dead-letter alerts fire", || async {
        let evaluation = alerts
            .evaluate_once(None)
            .await
            .map_err(|e| e.to_string())?;
        if evaluation.fired + evaluation.still_firing >= 2 {
            Ok(())
        } else {
            Err(format!("{evaluation:?}"))
        }
    })
    .await;

    let (driver, browser_path) = start_chromedriver().await;
    let browser = open_browser(&driver, &browser_path).await;

    // Signed in with the tenant's token, the overview shows the API's numbers.
    sign_in(&browser, spool.base(), &token).await;
    assert!(
        !visible(&browser, "#tenant-picker").await,
        "a tenant's token gets no tenant picker"
    );
    let counts = overview_matches_api(&spool, &browser, &token).await;
    assert_eq!(counts["default"]["completed"], 8);
    assert_eq!(counts["default"]["dead"], 1);
    assert_eq!(counts["orders"]["dead"], 2);
    assert_eq!(counts["orders"]["retryable"], 1);
    firing_alerts_match_api(&spool, &browser, &token).await;
    save_screenshot(&browser).await;

    // The job search finds the retrying job by state.
    find(&browser, "a[data-nav=jobs]")
        .await
        .click()
        .await
        .unwrap();
    find(&browser, "#filter-state")
        .await
        .select_by_value("retryable")
        .await
        .expect("choosing a state");
    find(&browser, "#jobs-filter button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    eventually("the search lists the one retryable job", || async {
        let rows = browser
            .find_all(Locator::Css("#jobs tbody tr[data-state=retryable]"))
            .await
            .map_err(|e| e.to_string())?;
        let all = browser
            .find_all(Locator::Css("#jobs tbody tr"))
            .await
            .map_err(|e| e.to_string())?;
        if rows.len() == 1 && all.len() == 1 {
            Ok(())
        } else {
            Err(format!("{} rows, {} retryable", all.len(), rows.len()))
        }
    })
    .await;

    // The dead-letter queue lists the API's dead jobs; retry one of them.
    find(&browser, "a[data-nav=dead]")
        .await
        .click()
        .await
        .unwrap();
    let dead = spool.call(&token, "GET", "/v1/dead", None).await;
    let dead_ids: Vec<&str> = dead["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(dead_ids.len(), 3, "{dead}");
    assert!(dead_ids.contains(&to_retry.as_str()));
    find(
        &browser,
        &format!("#dead tbody tr[data-job-id='{to_retry}']"),
    )
    .await;
    let rows = browser
        .find_all(Locator::Css("#dead tbody tr[data-job-id]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), dead_ids.len(), "the page lists every dead job");
    find(
        &browser,
        &format!("#dead button[data-action=retry][data-job-id='{to_retry}']"),
    )
    .await
    .click()
    .await
    .expect("clicking retry");

    // The API shows it requeued (and then run to completion on its second attempt)...
    let job = eventually("the retried job leaves the dead-letter queue", || async {
        let job = spool
            .call(&token, "GET", &format!("/v1/jobs/{to_retry}"), None)
            .await;
        if job["state"] != "dead" {
            Ok(job)
        } else {
            Err(job.to_string())
        }
    })
    .await;
    assert!(
        ["available", "running", "completed"].contains(&job["state"].as_str().unwrap()),
        "{job}"
    );
    // ...and so does the page: gone from the list, with a notice.
    eventually(
        "the page drops the job from the dead-letter queue",
        || async {
            let still = visible(
                &browser,
                &format!("#dead tbody tr[data-job-id='{to_retry}']"),
            )
            .await;
            let flash = browser
                .find(Locator::Css("#flash"))
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            if !still && flash.contains("Requeued 1 job") {
                Ok(())
            } else {
                Err(format!("row shown: {still}, notice: {flash:?}"))
            }
        },
    )
    .await;
    let rows = browser
        .find_all(Locator::Css("#dead tbody tr[data-job-id]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);

    // Its page follows it to completed, with the first attempt's error kept.
    browser
        .goto(&format!("{}/#/job/{to_retry}", spool.base()))
        .await
        .unwrap();
    eventually("the job's page shows it completed", || async {
        let state = find(&browser, "#view-job")
            .await
            .attr("data-state")
            .await
            .map_err(|e| e.to_string())?;
        if state.as_deref() == Some("completed") {
            Ok(())
        } else {
            Err(format!("{state:?}"))
        }
    })
    .await;
    let job = spool
        .call(&token, "GET", &format!("/v1/jobs/{to_retry}"), None)
        .await;
    assert_eq!(job["attempt"], 2, "{job}");
    let kinds = browser
        .find_all(Locator::Css("#job-errors tbody tr[data-kind=error]"))
        .await
        .unwrap();
    assert_eq!(kinds.len(), 1, "the failed first attempt is listed");
    let payload = find(&browser, "#job-payload").await.text().await.unwrap();
    assert!(payload.contains("A-retry"), "{payload}");

    // The overview follows: one dead job fewer.
    find(&browser, "a[data-nav=overview]")
        .await
        .click()
        .await
        .unwrap();
    let counts = overview_matches_api(&spool, &browser, &token).await;
    assert_eq!(counts["orders"]["dead"], 1);

    // The admin token picks a tenant and sees the same.
    find(&browser, "#logout").await.click().await.unwrap();
    sign_in(&browser, spool.base(), ADMIN_TOKEN).await;
    assert!(visible(&browser, "#tenant-picker").await);
    let picked = find(&browser, "#tenant").await.prop("value").await.unwrap();
    assert_eq!(picked.as_deref(), Some("acme"));
    overview_matches_api(&spool, &browser, &token).await;

    // The schedules view lists the tenant's schedules with their next fire and last runs
    // (issue 14): one tick fired by maintenance driven to the schedule's first tick.
    let created = spool
        .call(
            &token,
            "POST",
            "/v1/schedules",
            Some(
                json!({"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
                        "handler": "hello", "payload": {"greeting": "nightly"}}),
            ),
        )
        .await;
    let first: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(created["next_fire_at"].clone()).expect("a next fire time");
    spool::maintenance::Maintenance::new(Default::default(), db.store.clone())
        .schedules_once(Some(first + chrono::TimeDelta::seconds(1)))
        .await
        .expect("firing the schedule");
    find(&browser, "a[data-nav=schedules]")
        .await
        .click()
        .await
        .unwrap();
    let row = find(&browser, "#schedules tbody tr[data-schedule=nightly]").await;
    assert_eq!(
        row.attr("data-state").await.unwrap().as_deref(),
        Some("active")
    );
    let text = row.text().await.unwrap();
    assert!(
        text.contains("0 3 * * *") && text.contains("Europe/Berlin"),
        "{text}"
    );
    let next = find(
        &browser,
        "#schedules tr[data-schedule=nightly] td.next-fire time",
    )
    .await;
    let shown: chrono::DateTime<chrono::Utc> = next
        .attr("datetime")
        .await
        .unwrap()
        .expect("a datetime")
        .parse()
        .unwrap();
    assert!(shown > first, "the next fire after the one fired: {shown}");
    let run = find(
        &browser,
        "#schedules tr[data-schedule=nightly] td.runs .state",
    )
    .await;
    let state = run.attr("data-state").await.unwrap().unwrap_or_default();
    assert!(
        ["available", "running", "completed"].contains(&state.as_str()),
        "{state}"
    );

    browser.close().await.expect("closing the browser");
    drop(driver);
    spool.stop().await;
}

/// Issue 11: a job's page lists the last attempt's outbound HTTP requests with why each
/// failed (the test runtime has no operator exception, so loopback is blocked).
#[tokio::test]
async fn the_job_page_lists_outbound_http_requests_and_why_they_failed() {
    let spool = Spool::start().await;
    let tenant = spool
        .call(
            ADMIN_TOKEN,
            "POST",
            "/v1/tenants",
            Some(json!({"name": "acme", "allowed_hosts": ["http://localhost:9"]})),
        )
        .await;
    let token = tenant["token"].as_str().unwrap().to_string();
    spool.upload(&token, "caller", "http-client").await;
    let plan = json!({"requests": [
        {"method": "POST", "url": "https://api.example.com/v1/charges?card=secret"},
        {"url": "http://localhost:9/ping"},
    ]});
    let enqueued = spool
        .call(
            &token,
            "POST",
            "/v1/jobs",
            Some(json!({"handler": "caller", "payload": plan})),
        )
        .await;
    let id = enqueued["id"].as_str().unwrap().to_string();
    eventually("the job completes", || async {
        let job = spool
            .call(&token, "GET", &format!("/v1/jobs/{id}"), None)
            .await;
        if job["state"] == "completed" {
            Ok(())
        } else {
            Err(job["state"].to_string())
        }
    })
    .await;

    let (driver, browser_path) = start_chromedriver().await;
    let browser = open_browser(&driver, &browser_path).await;
    sign_in(&browser, spool.base(), &token).await;
    browser
        .goto(&format!("{}/#/job/{id}", spool.base()))
        .await
        .unwrap();
    let denied = find(&browser, "#job-http tbody tr[data-outcome=denied]").await;
    let text = denied.text().await.unwrap();
    assert!(text.contains("POST api.example.com/v1/charges"), "{text}");
    assert!(!text.contains("secret"), "the query is never shown: {text}");
    assert!(text.contains("not on the tenant's allow-list"), "{text}");
    let blocked = find(&browser, "#job-http tbody tr[data-outcome=blocked]").await;
    let text = blocked.text().await.unwrap();
    assert!(text.contains("loopback address: blocked"), "{text}");

    browser.close().await.expect("closing the browser");
    drop(driver);
    spool.stop().await;
}
