/*
 * {{name}}: a Spool job handler in C.
 *
 * Built into a WebAssembly component by `spool build` (build.sh: wit-bindgen, clang and
 * wasm-tools, world `handler` of wit/job.wit). `handler.h`, the bindings, is generated into
 * build/bindings/ at build time; spool.h says who frees what.
 *
 * Payload: {"name": "ada"}. Greets the name, counts greetings per name in the idempotency store
 * (the count commits with the job, exactly once), logs a line, and returns
 * {"greeting": "hello, ada", "times": 1}.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

/* Adds one to the counter under `key` and reads it back (the committed value plus this add). */
static bool count(const char *key_text, int64_t *times, handler_failure_t *err) {
    handler_string_t key = spool_str(key_text);
    spool_job_idempotency_store_store_error_t store_error;
    if (!spool_job_idempotency_store_add(&key, 1, &store_error)) {
        return spool_store_failure(err, &store_error);
    }
    handler_option_list_u8_t stored;
    if (!spool_job_idempotency_store_get(&key, &stored, &store_error)) {
        return spool_store_failure(err, &store_error);
    }
    // The value is the counter's decimal text (`42`).
    char digits[24] = "";
    if (stored.is_some && stored.val.len < sizeof digits) {
        memcpy(digits, stored.val.ptr, stored.val.len);
    }
    handler_option_list_u8_free(&stored);
    *times = strtoll(digits, NULL, 10);
    return true;
}

static bool greet(const handler_job_t *job, handler_list_u8_t *ret, handler_failure_t *err) {
    char *name;
    if (!spool_payload_string(job, "name", &name, err)) {
        return false;
    }
    if (name == NULL) {
        name = spool_format("world");
    }
    // A failure that retrying cannot fix: the job goes to the dead-letter queue at once.
    // (spool_retry is for transient ones: the job is retried with exponential backoff.)
    if (name[0] == '\0') {
        free(name);
        return spool_permanent(err, "\"name\" must be a non-empty string");
    }

    char *key = spool_format("greetings/%s", name);
    int64_t times;
    bool ok = count(key, &times, err);
    free(key);
    if (ok) {
        char *times_text = spool_format("%" PRId64, times);
        spool_log(SPOOL_JOB_LOG_LEVEL_INFO, "greeted", "name", name, "times", times_text, NULL);
        free(times_text);
        char *greeting = spool_format("hello, %s", name);
        char *quoted = spool_json_quote(greeting);
        ok = spool_ok(ret, "{\"greeting\":%s,\"times\":%" PRId64 "}", quoted, times);
        free(quoted);
        free(greeting);
    }
    free(name);
    return ok;
}

/* The `run` export: it owns `job`, and frees it whatever happens. */
bool exports_handler_run(handler_job_t *job, handler_list_u8_t *ret, handler_failure_t *err) {
    bool ok = greet(job, ret, err);
    handler_job_free(job);
    return ok;
}
