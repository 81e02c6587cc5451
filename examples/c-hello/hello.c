/*
 * A Spool job handler written in C.
 *
 * Built into a WebAssembly component against `wit/` (world `handler` of `spool:job@0.1.1`) by
 * scripts/build-c.sh: wit-bindgen generates the bindings (`handler.h`, never committed), clang
 * compiles them with this file and spool.c for wasm32-wasi, and wasm-tools makes the module a
 * component with the WASI preview-1 adapter. See README.md beside this file.
 *
 * Payload (UTF-8 JSON): `{"name": "ada"}` greets "ada" (default "world") and counts greetings
 * per name in the idempotency store; `{"fail": "retry"}` or `{"fail": "permanent"}` returns that
 * failure; `{"fail": "abort"}` calls abort(), which traps (a bug, as a Rust panic is).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

/* Fails the attempt as `{"fail": mode}` asks; true when there is no such request. */
static bool fail_as_asked(const char *mode, handler_failure_t *err) {
    if (mode == NULL) {
        return true;
    }
    if (strcmp(mode, "retry") == 0) {
        return spool_retry(err, "asked to fail with retry");
    }
    if (strcmp(mode, "permanent") == 0) {
        return spool_permanent(err, "asked to fail permanently");
    }
    if (strcmp(mode, "abort") == 0) {
        // No failure, a trap: what a crash or a failed assert() in C looks like to Spool. The
        // log line is kept; the attempt is retried with backoff.
        spool_log(SPOOL_JOB_LOG_LEVEL_ERROR, "asked to abort", NULL);
        abort();
    }
    char *quoted = spool_json_quote(mode);
    spool_permanent(err, "unknown fail mode %s (expected \"retry\", \"permanent\" or \"abort\")",
                    quoted);
    free(quoted);
    return false;
}

/*
 * Counts one greeting of `name` under `greetings/<name>` and reads the count back into
 * `*times`. `add` commits with the job (and never conflicts with concurrent jobs adding to the
 * same key); `get` sees the committed value plus this attempt's own adds.
 */
static bool count_greeting(const char *name, int64_t *times, handler_failure_t *err) {
    char *key_text = spool_format("greetings/%s", name);
    handler_string_t key = spool_str(key_text);
    spool_job_idempotency_store_store_error_t store_error;
    bool ok = spool_job_idempotency_store_add(&key, 1, &store_error);
    if (!ok) {
        spool_store_failure(err, &store_error);
        goto done;
    }
    handler_option_list_u8_t stored;
    ok = spool_job_idempotency_store_get(&key, &stored, &store_error);
    if (!ok) {
        spool_store_failure(err, &store_error);
        goto done;
    }
    // The value is the counter's decimal text (`42`), at most 20 bytes.
    char digits[24] = "";
    if (stored.is_some && stored.val.len < sizeof digits) {
        memcpy(digits, stored.val.ptr, stored.val.len);
    }
    handler_option_list_u8_free(&stored);
    char *rest;
    *times = strtoll(digits, &rest, 10);
    if (digits[0] == '\0' || *rest != '\0') {
        char *quoted = spool_json_quote(key_text);
        ok = spool_permanent(err, "store value under %s is not a counter", quoted);
        free(quoted);
    }
done:
    free(key_text);
    return ok;
}

/* Greets the payload's name; the attempt's outcome in `ret` or `err`, as `run` returns it. */
static bool greet(const handler_job_t *job, handler_list_u8_t *ret, handler_failure_t *err) {
    char *mode, *name = NULL;
    bool ok = spool_payload_string(job, "fail", &mode, err) && fail_as_asked(mode, err) &&
              spool_payload_string(job, "name", &name, err);
    free(mode);
    if (!ok) {
        return false;
    }
    if (name != NULL && name[0] == '\0') {
        free(name);
        return spool_permanent(err, "payload field \"name\" must be a non-empty string");
    }
    if (name == NULL) {
        name = spool_format("world");
    }

    int64_t times;
    if (count_greeting(name, &times, err)) {
        char *times_text = spool_format("%" PRId64, times);
        char *attempt_text = spool_format("%" PRIu32, job->attempt);
        spool_log(SPOOL_JOB_LOG_LEVEL_INFO, "greeted", "name", name, "times", times_text,
                  "attempt", attempt_text, NULL);
        free(times_text);
        free(attempt_text);
        // stdout is captured into the job's log, a line a line. It is buffered, and a handler
        // is a reactor, which never exits to flush it: flush before returning, or what is
        // still buffered is lost.
        printf("Hello, %s! (greeting #%" PRId64 ", job %.*s, attempt %" PRIu32 ")\n", name,
               times, (int)job->id.len, (const char *)job->id.ptr, job->attempt);
        fflush(stdout);

        char *greeting = spool_format("Hello, %s!", name);
        char *quoted = spool_json_quote(greeting);
        ok = spool_ok(ret, "{\"greeting\":%s,\"times\":%" PRId64 "}", quoted, times);
        free(quoted);
        free(greeting);
    } else {
        ok = false;
    }
    free(name);
    return ok;
}

/* The `run` export of the `handler` world: it owns `job`, and frees it whatever happens. */
bool exports_handler_run(handler_job_t *job, handler_list_u8_t *ret, handler_failure_t *err) {
    bool ok = greet(job, ret, err);
    handler_job_free(job);
    return ok;
}
