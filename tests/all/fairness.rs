//! Fair share between tenants at the claim: a tenant's own priority or an old `run_at` buys it
//! no place ahead of another tenant, and `max_running` holds however many workers claim at
//! once.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use spool::model::NewJob;
use spool::store::SlotShare;
use spool_tests::db::{TestDb, test_db};
use spool_tests::factory::{enqueue, tenant};

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn priority_and_an_old_run_at_buy_no_share_from_another_tenant() {
    let db = test_db().await;
    let greedy = tenant(&db.store, "greedy", 1_000).await;
    let normal = tenant(&db.store, "normal", 1_000).await;
    let pushy: Vec<NewJob> = (0..300)
        .map(|i| {
            let mut job = NewJob::json("h", &json!({ "i": i }));
            job.priority = i16::MIN;
            job.run_at = Some(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap());
            job
        })
        .collect();
    enqueue(&db.store, greedy, &pushy).await;
    let plain: Vec<NewJob> = (0..300)
        .map(|i| NewJob::json("h", &json!({ "i": i })))
        .collect();
    enqueue(&db.store, normal, &plain).await;
    // Saturation: one slot frees at a time, so each claim takes one job.
    let mut served = [0u32; 2];
    for _ in 0..200 {
        let claimed = db
            .store
            .job_claim("default", 1, "w", LEASE, None)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        served[usize::from(claimed[0].tenant_id == normal)] += 1;
    }
    let [to_greedy, to_normal] = served;
    // A fair coin over 200 claims lands within 60..140 all but once in ~10^8.
    assert!(
        (60..=140).contains(&to_normal),
        "normal got {to_normal} of 200 claims, greedy {to_greedy}"
    );
}

#[tokio::test]
async fn max_running_holds_under_concurrent_claimers() {
    let db = test_db().await;
    let t = tenant(&db.store, "capped", 10).await;
    let jobs: Vec<NewJob> = (0..500)
        .map(|i| NewJob::json("h", &json!({ "i": i })))
        .collect();
    enqueue(&db.store, t, &jobs).await;
    let mut claimers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let store = db.store.clone();
        claimers.spawn(async move {
            let mut got = 0;
            for _ in 0..5 {
                got += store
                    .job_claim("default", 10, &format!("w{w}"), LEASE, None)
                    .await
                    .unwrap()
                    .len();
            }
            got
        });
    }
    let mut total = 0;
    while let Some(got) = claimers.join_next().await {
        total += got.unwrap();
    }
    assert_eq!(
        total, 10,
        "eight concurrent claimers took {total} jobs of a cap of 10"
    );
    db.assert_running_counts_agree().await;
}

/// A worker's share of its slots: `held` jobs per tenant, and no cap.
fn held(held: &[(i64, u32)]) -> SlotShare<'_> {
    SlotShare {
        held,
        most_per_tenant: None,
    }
}

/// Two tenants, `long` and `short`, with 100 available jobs each.
async fn long_and_short() -> (TestDb, i64, i64) {
    let db = test_db().await;
    let long = tenant(&db.store, "long", 1_000).await;
    let short = tenant(&db.store, "short", 1_000).await;
    let jobs: Vec<NewJob> = (0..100)
        .map(|i| NewJob::json("h", &json!({ "i": i })))
        .collect();
    enqueue(&db.store, long, &jobs).await;
    enqueue(&db.store, short, &jobs).await;
    (db, long, short)
}

/// A worker's slots go first to the tenants holding fewest of them: a tenant whose long jobs
/// hold a worker's slots gets none of the slots they free while another tenant waits.
#[tokio::test]
async fn a_worker_s_free_slots_go_first_to_the_tenant_holding_fewest() {
    let (db, long, short) = long_and_short().await;
    // The worker holds three of `long`'s jobs and one of `short`'s: its next two free slots
    // go to `short` (a random pick would give `long` one of them three times in four).
    for _ in 0..20 {
        let claimed = db
            .store
            .job_claim_sharing(
                "default",
                2,
                "w",
                LEASE,
                None,
                held(&[(long, 3), (short, 1)]),
            )
            .await
            .unwrap();
        let tenants: Vec<i64> = claimed.iter().map(|j| j.tenant_id).collect();
        assert_eq!(
            tenants,
            [short, short],
            "the slots went to the tenant holding fewer"
        );
    }
    // Holding as many, the tenants take turns again.
    let claimed = db
        .store
        .job_claim_sharing(
            "default",
            2,
            "w",
            LEASE,
            None,
            held(&[(long, 3), (short, 3)]),
        )
        .await
        .unwrap();
    let mut tenants: Vec<i64> = claimed.iter().map(|j| j.tenant_id).collect();
    tenants.sort();
    assert_eq!(tenants, [long.min(short), long.max(short)], "one each");
}

/// When slots free one at a time (the usual case beside a tenant whose jobs run long), each
/// goes to the tenant holding fewest: a pick by lot among the tenants with work would hand
/// every other freed slot to the long-running tenant, which keeps it, until it held them all.
#[tokio::test]
async fn a_single_free_slot_goes_to_the_tenant_holding_fewest_not_by_lot() {
    let (db, long, short) = long_and_short().await;
    for _ in 0..20 {
        let claimed = db
            .store
            .job_claim_sharing("default", 1, "w", LEASE, None, held(&[(long, 63)]))
            .await
            .unwrap();
        let tenants: Vec<i64> = claimed.iter().map(|j| j.tenant_id).collect();
        assert_eq!(
            tenants,
            [short],
            "the freed slot went to the tenant holding none"
        );
    }
}

/// A tenant at its `max_running` takes no turn in a claim: the claim fills from the tenants
/// below theirs (a turn given to a capped tenant would come back empty, and the worker would
/// wait for its next poll with work queued).
#[tokio::test]
async fn a_tenant_at_its_running_cap_takes_no_turn_from_the_others() {
    let db = test_db().await;
    let capped = tenant(&db.store, "capped", 2).await;
    let other = tenant(&db.store, "other", 1_000).await;
    let jobs: Vec<NewJob> = (0..100)
        .map(|i| NewJob::json("h", &json!({ "i": i })))
        .collect();
    enqueue(&db.store, capped, &jobs).await;
    // The capped tenant reaches its cap.
    let running = db
        .store
        .job_claim("default", 2, "w", LEASE, None)
        .await
        .unwrap();
    assert_eq!(running.len(), 2);
    enqueue(&db.store, other, &jobs).await;
    // One slot frees at a time: each claim of one job is the other tenant's (a random pick
    // of the two tenants would come back empty about every other time).
    for _ in 0..20 {
        let claimed = db
            .store
            .job_claim("default", 1, "w", LEASE, None)
            .await
            .unwrap();
        let tenants: Vec<i64> = claimed.iter().map(|j| j.tenant_id).collect();
        assert_eq!(
            tenants,
            [other],
            "the claim filled from the tenant below its cap"
        );
    }
    db.assert_running_counts_agree().await;
}

/// No tenant takes more of a worker's slots than the cap it is given, however many of its
/// jobs wait and slots are free: the rest stay for the other tenants.
#[tokio::test]
async fn no_tenant_takes_more_than_the_cap_of_a_worker_s_slots() {
    let (db, long, short) = long_and_short().await;
    fn capped(held: &[(i64, u32)]) -> SlotShare<'_> {
        SlotShare {
            held,
            most_per_tenant: Some(8),
        }
    }
    // Holding six, `long` gets two more of ten free slots; `short` the rest.
    let claimed = db
        .store
        .job_claim_sharing("default", 10, "w", LEASE, None, capped(&[(long, 6)]))
        .await
        .unwrap();
    let of = |t: i64| claimed.iter().filter(|j| j.tenant_id == t).count();
    assert_eq!((of(long), of(short)), (2, 8), "the cap holds per tenant");
    // At their caps, the tenants get nothing, however much of their work waits.
    let claimed = db
        .store
        .job_claim_sharing(
            "default",
            10,
            "w",
            LEASE,
            None,
            capped(&[(long, 8), (short, 8)]),
        )
        .await
        .unwrap();
    assert!(claimed.is_empty(), "{} claimed past the cap", claimed.len());
}
