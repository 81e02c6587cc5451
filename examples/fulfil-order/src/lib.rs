//! An order-fulfilment handler: charge the order once, remember it, send a receipt.
//!
//! Every side effect is made safe to repeat, which is what at-least-once delivery needs:
//!
//! - the payment call carries an idempotency key stable across every attempt of the job, so a
//!   retry after a lost response cannot charge twice: over HTTP (`provider` set), Spool's
//!   automatic `Idempotency-Key`; otherwise `effect_key("charge")` for the stand-in;
//! - the charge and the order's state go to the idempotency store, which commits them
//!   atomically with the job, so a later job for the same order returns the recorded receipt
//!   instead of fulfilling it again;
//! - the `send-receipt` follow-up job is enqueued in the same commit, with an idempotency key
//!   per order, so the customer gets one receipt however often the order is fulfilled.
//!
//! For demos it can also fail on purpose: `"poison": true` is a permanent failure (the job is
//! dead-lettered at once) and `"fail_times": N` fails the first `N` attempts as transient
//! (the job is retried with backoff).

use serde::{Deserialize, Serialize};
use spool_guest::jobs::Enqueue;
use std::time::Duration;

use spool_guest::{Failure, Job, http, log, store};

/// The job's payload.
#[derive(Clone, Debug, Deserialize)]
struct Order {
    order_id: String,
    amount_cents: u64,
    email: String,
    /// Fail this many attempts with a transient error before succeeding.
    #[serde(default)]
    fail_times: u32,
    /// Fail permanently, as a handler does with data it can never process.
    #[serde(default)]
    poison: bool,
    /// The payment provider's origin (`https://payments.example`); a stand-in when absent.
    #[serde(default)]
    provider: Option<String>,
    /// The shipping API's origin; nothing is shipped when absent.
    #[serde(default)]
    shipping: Option<String>,
}

/// What the store keeps under `charge/<order_id>`.
#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    charge_ref: String,
    amount_cents: u64,
    idempotency_key: String,
}

/// The job's result, also kept under `order/<order_id>` once the order is fulfilled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Receipt {
    order_id: String,
    amount_cents: u64,
    email: String,
    charge_ref: String,
    receipt_job: String,
    /// The shipping API's reference, when the order names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shipment_ref: Option<String>,
}

/// What the store keeps under `order/<order_id>`.
#[derive(Debug, Serialize, Deserialize)]
struct OrderState {
    state: String,
    receipt: Receipt,
}

/// The payload of the `send-receipt` follow-up job.
#[derive(Debug, Serialize)]
struct ReceiptEmail<'a> {
    order_id: &'a str,
    email: &'a str,
    amount_cents: u64,
    charge_ref: &'a str,
}

/// Fulfils one order: charges it once, records it, and enqueues its receipt.
#[spool_guest::handler]
fn run(job: Job<Order>) -> Result<Receipt, Failure> {
    let order = &job.payload;
    validate(order)?;
    if order.poison {
        return Err(Failure::permanent(format!(
            "order {} is poisoned: refusing to process it",
            order.order_id
        )));
    }

    // Fulfilled by an earlier job (a duplicate submission, say): answer with the same receipt.
    let order_key = format!("order/{}", order.order_id);
    if let Some(done) = store::get::<OrderState>(&order_key)? {
        log::info("order already fulfilled", &[("order", &order.order_id)]);
        return Ok(done.receipt);
    }

    let charge_key = format!("charge/{}", order.order_id);
    let charge = match store::get::<Charge>(&charge_key)? {
        Some(charge) => charge,
        None => {
            let idempotency_key = store::effect_key("charge");
            let charge_ref = charge_card(order, job.attempt, &idempotency_key)?;
            let charge = Charge {
                charge_ref,
                amount_cents: order.amount_cents,
                idempotency_key,
            };
            store::put(&charge_key, &charge)?;
            charge
        }
    };

    // The second call of the attempt: Spool's key for it is the same on every attempt too.
    let shipment_ref = match &order.shipping {
        Some(shipping) => Some(ship(shipping, order)?),
        None => None,
    };

    let receipt_job = Enqueue::new("send-receipt")
        .payload(&ReceiptEmail {
            order_id: &order.order_id,
            email: &order.email,
            amount_cents: order.amount_cents,
            charge_ref: &charge.charge_ref,
        })?
        // One receipt per order, even if the order is submitted as several jobs.
        .idempotency_key(format!("receipt/{}", order.order_id))
        .max_attempts(5)
        .send()?;

    let receipt = Receipt {
        order_id: order.order_id.clone(),
        amount_cents: order.amount_cents,
        email: order.email.clone(),
        charge_ref: charge.charge_ref,
        receipt_job,
        shipment_ref,
    };
    store::put(
        &order_key,
        &OrderState {
            state: "fulfilled".to_owned(),
            receipt: receipt.clone(),
        },
    )?;
    log::info!(
        "fulfilled order {} for {} cents on attempt {}",
        order.order_id,
        order.amount_cents,
        job.attempt
    );
    Ok(receipt)
}

/// Rejects orders that no retry can fix.
fn validate(order: &Order) -> Result<(), Failure> {
    if order.order_id.is_empty() || order.order_id.contains('/') {
        return Err(Failure::permanent(
            "order_id must be non-empty and contain no '/'",
        ));
    }
    if order.amount_cents == 0 {
        return Err(Failure::permanent(format!(
            "order {} has no amount",
            order.order_id
        )));
    }
    if !order.email.contains('@') {
        return Err(Failure::permanent(format!(
            "order {} has no valid email address",
            order.order_id
        )));
    }
    Ok(())
}

/// Charges the order at the payment provider over HTTP. The request carries no
/// `Idempotency-Key`: Spool adds one that is the same on every attempt of this job, so the
/// provider charges once even when an earlier attempt's answer was lost. Timeouts, dropped
/// connections and 5xx are retried (the SDK's errors say which).
fn charge_over_http(provider: &str, order: &Order) -> Result<String, Failure> {
    #[derive(Deserialize)]
    struct Charged {
        id: String,
    }
    let charged: Charged = http::post(&format!("{provider}/v1/charges"))
        .json(&serde_json::json!({
            "order_id": order.order_id,
            "amount_cents": order.amount_cents,
        }))
        .timeout(Duration::from_millis(1500))
        .send()?
        .error_for_status()?
        .json()?;
    Ok(charged.id)
}

/// Books the order's shipment over HTTP; like the charge, safe to repeat thanks to Spool's
/// automatic `Idempotency-Key`.
fn ship(shipping: &str, order: &Order) -> Result<String, Failure> {
    #[derive(Deserialize)]
    struct Shipment {
        id: String,
    }
    let shipment: Shipment = http::post(&format!("{shipping}/v1/shipments"))
        .json(&serde_json::json!({ "order_id": order.order_id, "email": order.email }))
        .timeout(Duration::from_millis(1500))
        .send()?
        .error_for_status()?
        .json()?;
    Ok(shipment.id)
}

/// Charges the order: it fails the first `fail_times` attempts as a timed-out call would, then
/// charges over HTTP when the order names a provider, or else returns a stand-in charge
/// reference that depends only on the idempotency key, as a real provider deduplicates on it.
fn charge_card(order: &Order, attempt: u32, idempotency_key: &str) -> Result<String, Failure> {
    if attempt <= order.fail_times {
        log::warn(
            "payment provider timed out",
            &[
                ("order", &order.order_id),
                ("attempt", &attempt.to_string()),
            ],
        );
        return Err(Failure::retry(format!(
            "payment provider timed out (injected failure {attempt} of {})",
            order.fail_times
        )));
    }
    match &order.provider {
        Some(provider) => charge_over_http(provider, order),
        None => Ok(format!("ch_{:016x}", fnv1a(idempotency_key.as_bytes()))),
    }
}

/// 64-bit FNV-1a: a tiny stable hash, enough to make a fake charge reference.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use spool_guest::testing;

    use super::*;

    fn order(extra: Value) -> Job<Order> {
        let mut payload =
            json!({ "order_id": "o-42", "amount_cents": 1250, "email": "ada@example.com" });
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        testing::job(serde_json::from_value(payload).unwrap())
    }

    #[test]
    fn fulfils_an_order_and_enqueues_one_receipt() {
        let receipt = testing::attempt(run, order(json!({}))).unwrap();
        assert_eq!(receipt.order_id, "o-42");
        assert!(receipt.charge_ref.starts_with("ch_"));
        let enqueued = testing::enqueued();
        assert_eq!(enqueued.len(), 1);
        assert_eq!(enqueued[0].handler, "send-receipt");
        assert_eq!(enqueued[0].idempotency_key.as_deref(), Some("receipt/o-42"));
        assert_eq!(
            enqueued[0].payload_json::<Value>()["email"],
            "ada@example.com"
        );
        assert!(testing::store().contains_key("charge/o-42"));
        assert!(testing::store().contains_key("order/o-42"));
    }

    #[test]
    fn a_second_job_for_the_same_order_returns_the_same_receipt_without_side_effects() {
        let first = testing::attempt(run, order(json!({}))).unwrap();
        let mut again = order(json!({}));
        again.id = "another-job".into();
        again.idempotency_key = "another-job".into();
        assert_eq!(testing::attempt(run, again), Ok(first));
        assert_eq!(testing::enqueued().len(), 1);
    }

    #[test]
    fn poison_is_permanent() {
        let failure = testing::attempt(run, order(json!({ "poison": true }))).unwrap_err();
        assert!(failure.is_permanent(), "{failure:?}");
        assert!(testing::store().is_empty());
    }

    #[test]
    fn fail_times_fails_transiently_then_succeeds_with_the_same_charge_key() {
        let mut job = order(json!({ "fail_times": 2 }));
        for attempt in 1..=2 {
            job.attempt = attempt;
            let failure = testing::attempt(run, job.clone()).unwrap_err();
            assert!(failure.is_retry(), "{failure:?}");
            assert!(testing::store().is_empty() && testing::enqueued().is_empty());
        }
        job.attempt = 3;
        let receipt = testing::attempt(run, job).unwrap();
        let charge: Charge = serde_json::from_slice(&testing::store()["charge/o-42"]).unwrap();
        assert_eq!(charge.idempotency_key, "test/test-job/charge");
        assert_eq!(receipt.charge_ref, charge.charge_ref);
    }

    #[test]
    fn invalid_orders_are_permanent() {
        for bad in [
            json!({ "amount_cents": 0 }),
            json!({ "email": "nobody" }),
            json!({ "order_id": "" }),
        ] {
            let failure = testing::attempt(run, order(bad.clone())).unwrap_err();
            assert!(failure.is_permanent(), "{bad}: {failure:?}");
        }
    }
}
