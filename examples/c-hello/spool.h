/*
 * Plumbing between a C handler and the bindings wit-bindgen generates for the `handler` world
 * of wit/job.wit (`handler.h`, written by the build): failures with formatted messages, store
 * errors mapped to failures the way the Rust SDK maps them, a log line from C strings, and just
 * enough JSON to read a string field of the payload and to write one. `spool new --lang c`
 * copies this file and spool.c beside a new handler as they are.
 *
 * Ownership follows wit-bindgen's C bindings: `run` owns its `job` and frees it
 * (`handler_job_free`); what it returns, the result bytes or a failure's message, must come
 * from malloc, and the bindings free it once the host has copied it. Arguments passed to an
 * import stay the caller's; what an import returns is the caller's to free with the matching
 * `*_free` function. Every string crossing to the host must be valid UTF-8, or the attempt traps.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "handler.h"

#define SPOOL_PRINTF(fmt, args) __attribute__((__format__(__printf__, fmt, args)))

/*
 * Sets `*err` to a transient failure, retried with exponential backoff (and dead-lettered once
 * the job runs out of attempts), with a printf-formatted message; returns false, so that
 * `return spool_retry(err, ...);` ends `run` with it.
 */
bool spool_retry(handler_failure_t *err, const char *format, ...) SPOOL_PRINTF(2, 3);

/* As spool_retry, for a failure no retry can fix: the job is dead-lettered at once. */
bool spool_permanent(handler_failure_t *err, const char *format, ...) SPOOL_PRINTF(2, 3);

/*
 * Sets `*err` to the failure for a store error and frees `error`; returns false. Only an
 * unavailable store is worth a retry; a key, value or budget over its limit fails the same way
 * every time, so it is permanent.
 */
bool spool_store_failure(handler_failure_t *err,
                         spool_job_idempotency_store_store_error_t *error);

/* As spool_store_failure, for an error of `spool:job/jobs.enqueue`: all of them are permanent. */
bool spool_enqueue_failure(handler_failure_t *err, spool_job_jobs_enqueue_error_t *error);

/*
 * Appends a line to the job's log: `message`, then the fields as name/value pairs of C strings,
 * ended by NULL: `spool_log(SPOOL_JOB_LOG_LEVEL_INFO, "greeted", "name", name, NULL)`.
 */
void spool_log(spool_job_log_level_t level, const char *message, ...)
    __attribute__((__sentinel__));

/*
 * Reads the string field `field` of the payload, a JSON object (an empty payload counts as
 * `{}`), into `*value`: a NUL-terminated copy to free(), or NULL when the object has no such
 * field. Fails permanently (returns false with `*err` set) when the payload is not a JSON
 * object, or the field is not a string of valid UTF-8 without NUL characters.
 */
bool spool_payload_string(const handler_job_t *job, const char *field, char **value,
                          handler_failure_t *err);

/* Returns `s` as a JSON string literal, quotes included: a NUL-terminated copy to free(). */
char *spool_json_quote(const char *s);

/* Returns a printf-formatted, NUL-terminated copy to free(); aborts when out of memory. */
char *spool_format(const char *format, ...) SPOOL_PRINTF(1, 2);

/*
 * Sets the result of `run` to the printf-formatted text (JSON, by convention) and returns true,
 * so that `return spool_ok(ret, ...);` ends `run` with it.
 */
bool spool_ok(handler_list_u8_t *ret, const char *format, ...) SPOOL_PRINTF(2, 3);

/* A WIT string borrowing the C string `s`, to pass to an import (which does not keep it). */
static inline handler_string_t spool_str(const char *s) {
    return (handler_string_t){(uint8_t *)s, strlen(s)};
}

#endif
