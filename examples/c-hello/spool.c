/*
 * The plumbing declared in spool.h: see there for what each function does and who frees what.
 */
#include "spool.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* malloc that ends the attempt when memory runs out: abort() traps, and Spool retries it. */
static void *allocate(size_t size) {
    void *ptr = malloc(size == 0 ? 1 : size);
    if (ptr == NULL) {
        abort();
    }
    return ptr;
}

/* vsnprintf into a fresh buffer; its length (without the NUL) in `*len`. */
static char *vformat(size_t *len, const char *format, va_list args) {
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, format, args);
    if (n < 0) {
        abort();
    }
    char *text = allocate((size_t)n + 1);
    vsnprintf(text, (size_t)n + 1, format, again);
    va_end(again);
    *len = (size_t)n;
    return text;
}

char *spool_format(const char *format, ...) {
    va_list args;
    va_start(args, format);
    size_t len;
    char *text = vformat(&len, format, args);
    va_end(args);
    return text;
}

/* Sets `*err` to a failure of kind `tag` with the formatted message; returns false. */
static bool vfail(handler_failure_t *err, uint8_t tag, const char *format, va_list args) {
    size_t len;
    char *message = vformat(&len, format, args);
    handler_string_t text = {(uint8_t *)message, len};
    err->tag = tag;
    if (tag == SPOOL_JOB_TYPES_FAILURE_RETRY) {
        err->val.retry = text;
    } else {
        err->val.permanent = text;
    }
    // The bindings free a message only when it is not empty; an empty one is freed here.
    if (len == 0) {
        free(message);
    }
    return false;
}

bool spool_retry(handler_failure_t *err, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfail(err, SPOOL_JOB_TYPES_FAILURE_RETRY, format, args);
    va_end(args);
    return false;
}

bool spool_permanent(handler_failure_t *err, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfail(err, SPOOL_JOB_TYPES_FAILURE_PERMANENT, format, args);
    va_end(args);
    return false;
}

bool spool_store_failure(handler_failure_t *err,
                         spool_job_idempotency_store_store_error_t *error) {
    switch (error->tag) {
    case SPOOL_JOB_IDEMPOTENCY_STORE_STORE_ERROR_INVALID_KEY:
        spool_permanent(err, "invalid store key: a key must be 1 to %" PRIu32 " bytes long",
                        error->val.invalid_key);
        break;
    case SPOOL_JOB_IDEMPOTENCY_STORE_STORE_ERROR_VALUE_TOO_LARGE:
        spool_permanent(err, "store value too large: the limit is %" PRIu32 " bytes",
                        error->val.value_too_large);
        break;
    case SPOOL_JOB_IDEMPOTENCY_STORE_STORE_ERROR_QUOTA_EXCEEDED:
        spool_permanent(err, "store quota exceeded: the attempt's budget is %" PRIu64,
                        error->val.quota_exceeded);
        break;
    default:
        spool_retry(err, "store unavailable: %.*s", (int)error->val.unavailable.len,
                    (const char *)error->val.unavailable.ptr);
        break;
    }
    spool_job_idempotency_store_store_error_free(error);
    return false;
}

bool spool_enqueue_failure(handler_failure_t *err, spool_job_jobs_enqueue_error_t *error) {
    switch (error->tag) {
    case SPOOL_JOB_JOBS_ENQUEUE_ERROR_INVALID:
        spool_permanent(err, "invalid follow-up job: %.*s", (int)error->val.invalid.len,
                        (const char *)error->val.invalid.ptr);
        break;
    case SPOOL_JOB_JOBS_ENQUEUE_ERROR_PAYLOAD_TOO_LARGE:
        spool_permanent(err, "follow-up job payload too large: the limit is %" PRIu32 " bytes",
                        error->val.payload_too_large);
        break;
    default:
        spool_permanent(err, "too many follow-up jobs: an attempt may enqueue at most %" PRIu32,
                        error->val.too_many);
        break;
    }
    spool_job_jobs_enqueue_error_free(error);
    return false;
}

void spool_log(spool_job_log_level_t level, const char *message, ...) {
    va_list args;
    va_start(args, message);
    size_t count = 0;
    while (va_arg(args, const char *) != NULL) {
        count++;
    }
    va_end(args);
    // Name/value pairs; an odd one out is dropped.
    size_t pairs = count / 2;
    handler_tuple2_string_string_t *fields = allocate(pairs * sizeof *fields);
    va_start(args, message);
    for (size_t i = 0; i < pairs; i++) {
        fields[i].f0 = spool_str(va_arg(args, const char *));
        fields[i].f1 = spool_str(va_arg(args, const char *));
    }
    va_end(args);
    handler_string_t text = spool_str(message);
    handler_list_tuple2_string_string_t list = {fields, pairs};
    spool_job_log_log(level, &text, &list);
    // The strings are borrowed, so only the array is ours to free.
    free(fields);
}

bool spool_ok(handler_list_u8_t *ret, const char *format, ...) {
    va_list args;
    va_start(args, format);
    size_t len;
    char *text = vformat(&len, format, args);
    va_end(args);
    ret->ptr = (uint8_t *)text;
    ret->len = len;
    // As for a failure's message: the bindings free only a result that is not empty.
    if (len == 0) {
        free(text);
    }
    return true;
}

/*
 * The JSON reader: enough to find a string field of the payload's top-level object, skipping
 * the other fields whatever they hold. A handler with richer payloads would rather use a JSON
 * library; small ones written in plain C (cJSON, jsmn) build for wasm32-wasi as they are.
 */

static const uint8_t *skip_space(const uint8_t *p, const uint8_t *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

static int hex_digit(uint8_t c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        return (c | 0x20) - 'a' + 10;
    }
    return -1;
}

/* The 4 hex digits at `p` (at least 4 bytes before `end`) as a number; -1 when they are not. */
static long hex4(const uint8_t *p, const uint8_t *end) {
    if (end - p < 4) {
        return -1;
    }
    long value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(p[i]);
        if (digit < 0) {
            return -1;
        }
        value = value << 4 | digit;
    }
    return value;
}

/* Writes code point `c` as UTF-8 at `out`; returns the bytes written. */
static size_t put_utf8(uint8_t *out, uint32_t c) {
    if (c < 0x80) {
        out[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (uint8_t)(0xC0 | c >> 6);
        out[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xE0 | c >> 12);
        out[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | c >> 18);
    out[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/*
 * Reads the JSON string whose opening quote is at `p`; returns the position after its closing
 * quote, or NULL when it is malformed. When `out` is not NULL, stores the decoded bytes there
 * (a NUL-terminated buffer to free()) and their length in `*out_len`. A lone surrogate escape
 * decodes to bytes that are not UTF-8, which the caller's check refuses.
 */
static const uint8_t *read_string(const uint8_t *p, const uint8_t *end, char **out,
                                  size_t *out_len) {
    // The decoded text is never longer than the escaped one.
    uint8_t *text = out != NULL ? allocate((size_t)(end - p) + 1) : NULL;
    size_t len = 0;
    for (p++; p < end && *p != '"'; p++) {
        uint8_t c = *p;
        if (c < 0x20) {
            goto malformed;
        }
        if (c == '\\') {
            if (++p == end) {
                goto malformed;
            }
            switch (*p) {
            case '"': case '\\': case '/': c = *p; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                long unit = hex4(p + 1, end);
                if (unit < 0) {
                    goto malformed;
                }
                p += 4;
                uint32_t point = (uint32_t)unit;
                // A high surrogate followed by an escaped low one is a single code point.
                if (point >= 0xD800 && point < 0xDC00 && end - p > 6 && p[1] == '\\' &&
                    p[2] == 'u') {
                    long low = hex4(p + 3, end);
                    if (low >= 0xDC00 && low < 0xE000) {
                        point = 0x10000 + ((point - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
                        p += 6;
                    }
                }
                if (text != NULL) {
                    len += put_utf8(text + len, point);
                }
                continue;
            }
            default:
                goto malformed;
            }
        }
        if (text != NULL) {
            text[len++] = c;
        }
    }
    if (p == end) {
        goto malformed;
    }
    if (text != NULL) {
        text[len] = '\0';
        *out = (char *)text;
        *out_len = len;
    }
    return p + 1;
malformed:
    free(text);
    return NULL;
}

/* Skips the JSON value at `p`; returns the position after it, or NULL when it is malformed. */
static const uint8_t *skip_value(const uint8_t *p, const uint8_t *end) {
    if (p == end) {
        return NULL;
    }
    if (*p == '"') {
        return read_string(p, end, NULL, NULL);
    }
    if (*p == '{' || *p == '[') {
        // Brackets are counted, not matched by kind: enough to find where the value ends.
        size_t depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = read_string(p, end, NULL, NULL);
                if (p == NULL) {
                    return NULL;
                }
                continue;
            }
            if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            }
            p++;
        }
        return NULL;
    }
    // A number, true, false or null: up to the next delimiter.
    const uint8_t *start = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r') {
        p++;
    }
    return p == start ? NULL : p;
}

/* Whether `s` (`len` bytes) is valid UTF-8: no overlong forms, surrogates or stray bytes. */
static bool valid_utf8(const uint8_t *s, size_t len) {
    static const uint32_t least[] = {0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t more;
        uint32_t point;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            more = 1, point = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            more = 2, point = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            more = 3, point = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= more) {
            return false;
        }
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            point = point << 6 | (s[i + k] & 0x3F);
        }
        if (point < least[more] || point > 0x10FFFF || (point >= 0xD800 && point < 0xE000)) {
            return false;
        }
        i += more + 1;
    }
    return true;
}

bool spool_payload_string(const handler_job_t *job, const char *field, char **value,
                          handler_failure_t *err) {
    *value = NULL;
    if (job->payload.len == 0) {
        return true;
    }
    const uint8_t *p = job->payload.ptr, *end = p + job->payload.len;
    p = skip_space(p, end);
    if (p == end) {
        return true;
    }
    if (*p != '{') {
        return spool_permanent(err, "payload must be a JSON object");
    }
    p = skip_space(p + 1, end);
    // The last field of that name wins, as in JavaScript's and Python's JSON.parse/json.loads.
    const uint8_t *found = NULL;
    while (p < end && *p != '}') {
        if (*p != '"') {
            goto malformed;
        }
        char *name;
        size_t name_len;
        p = read_string(p, end, &name, &name_len);
        if (p == NULL) {
            goto malformed;
        }
        bool wanted = name_len == strlen(field) && memcmp(name, field, name_len) == 0;
        free(name);
        p = skip_space(p, end);
        if (p == end || *p != ':') {
            goto malformed;
        }
        p = skip_space(p + 1, end);
        if (wanted) {
            found = p;
        }
        p = skip_value(p, end);
        if (p == NULL) {
            goto malformed;
        }
        p = skip_space(p, end);
        if (p < end && *p == ',') {
            // A field must follow a comma.
            p = skip_space(p + 1, end);
            if (p == end || *p != '"') {
                goto malformed;
            }
        } else if (p < end && *p != '}') {
            goto malformed;
        }
    }
    if (p == end || skip_space(p + 1, end) != end) {
        goto malformed;
    }
    if (found == NULL) {
        return true;
    }
    if (*found != '"') {
        return spool_permanent(err, "payload field \"%s\" must be a string", field);
    }
    size_t len;
    read_string(found, end, value, &len);
    if (!valid_utf8((const uint8_t *)*value, len) || strlen(*value) != len) {
        free(*value);
        *value = NULL;
        return spool_permanent(err,
                               "payload field \"%s\" must be valid UTF-8 without NUL characters",
                               field);
    }
    return true;
malformed:
    return spool_permanent(err, "payload must be a JSON object");
}

char *spool_json_quote(const char *s) {
    size_t len = strlen(s);
    // Every byte takes at most 6 (`\u001f`), plus the quotes and the NUL.
    char *out = allocate(len * 6 + 3);
    size_t n = 0;
    out[n++] = '"';
    for (const char *c = s; *c != '\0'; c++) {
        unsigned char b = (unsigned char)*c;
        if (b == '"' || b == '\\') {
            out[n++] = '\\';
            out[n++] = (char)b;
        } else if (b < 0x20) {
            n += (size_t)sprintf(out + n, "\\u%04x", b);
        } else {
            out[n++] = (char)b;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}
