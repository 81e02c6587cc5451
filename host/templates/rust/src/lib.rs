//! {{name}}: a Spool job handler.
//!
//! Payload: `{"name": "ada"}`. Greets the name, counts greetings per name in the idempotency
//! store (the count commits with the job, exactly once), logs a line, and returns
//! `{"greeting": "hello, ada", "times": 1}`.

use serde::{Deserialize, Serialize};
use spool_guest::{Failure, Job, log, store};

/// The job's payload.
#[derive(Debug, Deserialize)]
struct Payload {
    /// Who to greet (default "world").
    name: Option<String>,
}

/// The job's result.
#[derive(Debug, Serialize)]
struct Greeted {
    greeting: String,
    times: u64,
}

/// Runs one attempt. `Failure::retry` is retried with backoff, `Failure::permanent` goes
/// straight to the dead-letter queue; a payload that does not parse is permanent.
#[spool_guest::handler]
fn run(job: Job<Payload>) -> Result<Greeted, Failure> {
    let name = job.payload.name.as_deref().unwrap_or("world");
    if name.is_empty() {
        return Err(Failure::permanent("\"name\" must not be empty"));
    }
    let key = format!("greetings/{name}");
    let times = store::get::<u64>(&key)?.unwrap_or(0) + 1;
    store::put(&key, &times)?;
    log::info("greeted", &[("name", name), ("times", &times.to_string())]);
    Ok(Greeted {
        greeting: format!("hello, {name}"),
        times,
    })
}

#[cfg(test)]
mod tests {
    use spool_guest::testing;

    use super::*;

    #[test]
    fn greets_and_counts() {
        let job = testing::job(Payload {
            name: Some("ada".into()),
        });
        let greeted = testing::attempt(run, job).expect("ok");
        assert_eq!(greeted.greeting, "hello, ada");
        assert_eq!(greeted.times, 1);
    }
}
