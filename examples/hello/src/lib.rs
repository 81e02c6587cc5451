//! The smallest Spool handler: it logs a line, prints one to stdout, and returns its payload
//! unchanged.

use spool_guest::{Bytes, Failure, Job};

/// Echoes the job's payload bytes back as its result.
#[spool_guest::handler]
fn run(job: Job<Bytes>) -> Result<Bytes, Failure> {
    spool_guest::log::info(
        "hello from a Spool handler",
        &[("job.id", &job.id), ("attempt", &job.attempt.to_string())],
    );
    println!(
        "hello: echoing {} bytes for job {}",
        job.payload.len(),
        job.id
    );
    Ok(job.payload)
}

#[cfg(test)]
mod tests {
    use spool_guest::testing;

    use super::*;

    #[test]
    fn echoes_the_payload_and_logs_a_line() {
        let payload = Bytes::from(r#"{"hi":1}"#);
        let result = testing::attempt(run, testing::job(payload.clone()));
        assert_eq!(result, Ok(payload));
        assert_eq!(testing::logs()[0].message, "hello from a Spool handler");
    }
}
