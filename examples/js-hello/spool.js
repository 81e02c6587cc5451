// @ts-check
/**
 * The plumbing between a JavaScript handler and Spool's `run` export: how a thrown value
 * becomes the attempt's failure, and how an uncaught exception reaches the job's log.
 *
 * Copy this file beside your handler (until it is published as a package) and wrap your
 * function with `handler`:
 *
 *     import { handler, permanent } from './spool.js';
 *     export const run = handler((job) => { ... });
 *
 * What a thrown value becomes, the way the Rust SDK (`spool-guest`) maps errors:
 *
 * - `retry(message)` / `permanent(message)` (or a plain `{tag: 'retry' | 'permanent', val}`):
 *   that failure. A retry is retried with backoff; a permanent failure is dead-lettered at once.
 * - An error thrown by a store or follow-up import (componentize-js throws it as an `Error`
 *   whose `payload` is the WIT variant): a store that is `unavailable` is a retry, every
 *   other store or follow-up error is permanent (a retry would hit the same limit).
 * - Anything else (a `TypeError`, a `SyntaxError`, a rejected promise): a bug, as a Rust panic
 *   or a Python exception escaping `run` is. Its message and then its stack, a frame a line,
 *   go to the job's log as `error` lines, and the attempt traps; Spool retries a trap with
 *   backoff like a retry. Without this, the log would say only that the value thrown was no
 *   `failure`, without the handler's stack.
 *
 * What `run` returns becomes the job's result: a `Uint8Array` as it is, anything else as its
 * JSON text.
 */

import { log } from 'spool:job/log@0.1.1';

/** @typedef {import('spool:job/types@0.1.1').Job} Job */
/** @typedef {import('spool:job/types@0.1.1').Failure} Failure */

/**
 * Returns a transient failure to throw: the job is retried with exponential backoff, and
 * dead-lettered once it runs out of attempts.
 *
 * @param {string} message
 * @returns {Failure}
 */
export function retry(message) {
  return { tag: 'retry', val: message };
}

/**
 * Returns a permanent failure to throw: the job is dead-lettered at once, never retried.
 *
 * @param {string} message
 * @returns {Failure}
 */
export function permanent(message) {
  return { tag: 'permanent', val: message };
}

/**
 * Returns the job's payload parsed as JSON, or `{}` when it is empty; throws a permanent
 * failure when it is not UTF-8 JSON (a retry would not fix it).
 *
 * @param {Job} job
 * @returns {unknown}
 */
export function payloadJson(job) {
  if (job.payload.length === 0) {
    return {};
  }
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(job.payload));
  } catch (e) {
    throw permanent(`payload is not UTF-8 JSON: ${e}`);
  }
}

/**
 * Wraps a handler function as Spool's `run` export: maps what it throws to a failure (see the
 * top of this file) and encodes what it returns. The function may be `async`.
 *
 * @param {(job: Job) => unknown} fn
 * @returns {(job: Job) => Uint8Array | Promise<Uint8Array>}
 */
export function handler(fn) {
  return (job) => {
    let out;
    try {
      out = fn(job);
    } catch (e) {
      throw toFailure(e);
    }
    if (out instanceof Promise) {
      return out.then(encodeResult, (e) => {
        throw toFailure(e);
      });
    }
    return encodeResult(out);
  };
}

/**
 * @param {unknown} value
 * @returns {Uint8Array}
 */
function encodeResult(value) {
  if (value instanceof Uint8Array) {
    return value;
  }
  return new TextEncoder().encode(JSON.stringify(value ?? null));
}

/**
 * The failure for each error case of `spool:job/idempotency-store` and `spool:job/jobs`.
 *
 * @type {Record<string, (val: unknown) => Failure>}
 */
const IMPORT_ERRORS = {
  'invalid-key': (limit) =>
    permanent(`invalid store key: a key must be 1 to ${limit} bytes long`),
  'value-too-large': (limit) =>
    permanent(`store value too large: the limit is ${limit} bytes`),
  'quota-exceeded': (limit) =>
    permanent(`store quota exceeded: the attempt's budget is ${limit}`),
  unavailable: (reason) => retry(`store unavailable: ${reason}`),
  invalid: (reason) => permanent(`invalid follow-up job: ${reason}`),
  'payload-too-large': (limit) =>
    permanent(`follow-up job payload too large: the limit is ${limit} bytes`),
  'too-many': (limit) =>
    permanent(`too many follow-up jobs: an attempt may enqueue at most ${limit}`),
};

/**
 * Returns what to throw out of `run` for `thrown`: a failure, or (for a bug) `thrown` itself
 * after logging its message and stack, which makes the attempt trap.
 *
 * @param {unknown} thrown
 * @returns {unknown}
 */
function toFailure(thrown) {
  // componentize-js throws an import's `err` as an Error with the variant in `payload`. It is
  // not `instanceof Error` here (the bindings' Error is another realm's), so look, not test.
  const value =
    thrown !== null && typeof thrown === 'object' && Object.hasOwn(thrown, 'payload')
      ? /** @type {{payload: unknown}} */ (thrown).payload
      : thrown;
  if (value !== null && typeof value === 'object' && 'tag' in value && 'val' in value) {
    const { tag, val } = /** @type {{tag: unknown, val: unknown}} */ (value);
    if ((tag === 'retry' || tag === 'permanent') && typeof val === 'string') {
      return { tag, val };
    }
    if (typeof tag === 'string' && Object.hasOwn(IMPORT_ERRORS, tag)) {
      return IMPORT_ERRORS[tag](val);
    }
  }
  log('error', `uncaught exception: ${describe(thrown)}`, []);
  // A line a frame, like a Python traceback: a log line's text is one line wherever it is shown
  // (`spool job get` escapes a newline). SpiderMonkey writes a frame as `function@file:line:col`.
  const frames = errorLike(thrown) && typeof thrown.stack === 'string' ? thrown.stack.split('\n') : [];
  const own = frames.filter((frame) => frame !== '' && !BINDINGS_FRAME.test(frame));
  for (const frame of own.slice(0, MAX_FRAMES)) {
    log('error', `  ${frame}`, []);
  }
  if (own.length > MAX_FRAMES) {
    log('error', `  ... ${own.length - MAX_FRAMES} more frames`, []);
  }
  return thrown;
}

/** The most stack frames an uncaught exception logs (a job's log is bounded, 64 KiB by default). */
const MAX_FRAMES = 50;

/** A frame of the bindings componentize-js generates around `run` and the imports. */
const BINDINGS_FRAME = /@\/[^@]*\/sources\/initializer\.js:/;

/**
 * @param {unknown} thrown
 * @returns {string}
 */
function describe(thrown) {
  if (errorLike(thrown)) {
    // The chain of causes, as the Rust SDK writes an error's sources.
    return thrown.cause === undefined ? String(thrown) : `${thrown}: ${describe(thrown.cause)}`;
  }
  try {
    return `${typeof thrown} ${JSON.stringify(thrown)}`;
  } catch {
    return String(thrown);
  }
}

/**
 * Returns whether `value` is an Error, of this realm or another.
 *
 * @param {unknown} value
 * @returns {value is Error}
 */
function errorLike(value) {
  return value instanceof Error || Object.prototype.toString.call(value) === '[object Error]';
}
