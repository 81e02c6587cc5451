//! Sends the receipt for an order that `fulfil-order` charged; the email is simulated.
//!
//! The sent message is recorded in the idempotency store under `receipt-sent/<order_id>`, and
//! the mail provider gets `effect_key("email")` as its idempotency key, so a retry or a
//! duplicate job never sends the customer a second receipt.

use serde::{Deserialize, Serialize};
use spool_guest::{Failure, Job, log, store};

/// The job's payload, as `fulfil-order` enqueues it.
#[derive(Clone, Debug, Deserialize)]
struct ReceiptEmail {
    order_id: String,
    email: String,
    amount_cents: u64,
    charge_ref: String,
}

/// The job's result, also kept under `receipt-sent/<order_id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Sent {
    order_id: String,
    to: String,
    message_id: String,
}

/// Sends one receipt, unless it was sent already.
#[spool_guest::handler]
fn run(job: Job<ReceiptEmail>) -> Result<Sent, Failure> {
    let receipt = &job.payload;
    let sent_key = format!("receipt-sent/{}", receipt.order_id);
    if let Some(sent) = store::get::<Sent>(&sent_key)? {
        log::info("receipt already sent", &[("order", &receipt.order_id)]);
        return Ok(sent);
    }
    // A real handler would call its mail provider here with this key for deduplication.
    let message_id = store::effect_key("email");
    println!(
        "To: {}\nSubject: Your receipt for order {}\n\nWe charged {}.{:02} ({}).",
        receipt.email,
        receipt.order_id,
        receipt.amount_cents / 100,
        receipt.amount_cents % 100,
        receipt.charge_ref
    );
    let sent = Sent {
        order_id: receipt.order_id.clone(),
        to: receipt.email.clone(),
        message_id,
    };
    store::put(&sent_key, &sent)?;
    log::info!(
        "sent the receipt for order {} to {}",
        receipt.order_id,
        receipt.email
    );
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use spool_guest::testing;

    use super::*;

    fn job() -> Job<ReceiptEmail> {
        testing::job(
            serde_json::from_value(serde_json::json!({
                "order_id": "o-42", "email": "ada@example.com",
                "amount_cents": 1250, "charge_ref": "ch_1"
            }))
            .unwrap(),
        )
    }

    #[test]
    fn sends_once_and_then_answers_from_the_store() {
        let first = testing::attempt(run, job()).unwrap();
        assert_eq!(first.to, "ada@example.com");
        let mut duplicate = job();
        duplicate.idempotency_key = "other".into();
        assert_eq!(testing::attempt(run, duplicate), Ok(first));
        assert_eq!(
            testing::logs().last().unwrap().message,
            "receipt already sent"
        );
    }
}
