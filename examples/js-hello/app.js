// @ts-check
/**
 * A Spool job handler written in JavaScript.
 *
 * Built into a WebAssembly component with componentize-js against `wit/` (world `handler` of
 * `spool:job@0.1.1`); see README.md beside this file and `scripts/build-js.sh`.
 *
 * Payload (UTF-8 JSON): `{"name": "ada"}` greets "ada" (default "world") and counts greetings
 * per name in the idempotency store; `{"fail": "retry"}` or `{"fail": "permanent"}` throws that
 * failure; `{"fail": "throw"}` throws an Error the handler does not catch (a bug).
 */

import { add, effectKey, get, put } from 'spool:job/idempotency-store@0.1.1';
import { log } from 'spool:job/log@0.1.1';

import { handler, payloadJson, permanent, retry } from './spool.js';

export const run = handler((job) => {
  const payload = payloadJson(job);
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw permanent(`payload must be a JSON object, got ${JSON.stringify(payload)}`);
  }
  const { fail, name = 'world' } = /** @type {{fail?: unknown, name?: unknown}} */ (payload);

  switch (fail) {
    case undefined:
      break;
    case 'retry':
      throw retry('asked to fail with retry');
    case 'permanent':
      throw permanent('asked to fail permanently');
    case 'throw':
      throw new Error('asked to throw');
    default:
      throw permanent(
        `unknown fail mode ${JSON.stringify(fail)} (expected "retry", "permanent" or "throw")`,
      );
  }
  if (typeof name !== 'string' || name === '') {
    throw permanent('payload field "name" must be a non-empty string');
  }

  // A store error thrown here (an invalid key, an unavailable store) becomes the matching
  // failure in `handler`, as `?` does in the Rust SDK.
  const key = `greetings/${name}`;
  const previous = get(key);
  const count = previous === undefined ? 1 : Number(new TextDecoder().decode(previous)) + 1;
  if (!Number.isSafeInteger(count)) {
    throw permanent(`store value under ${JSON.stringify(key)} is not a counter`);
  }
  put(key, new TextEncoder().encode(String(count)));

  // A counter every job bumps: `add` never conflicts with concurrent jobs (no re-runs on a hot
  // key), and commits with the job like the put above. The delta is a BigInt (WIT `s64`).
  add('greetings-total', 1n);

  const greetKey = effectKey('greet');

  log('info', 'greeted', [
    ['name', name],
    ['count', String(count)],
    ['attempt', String(job.attempt)],
  ]);
  console.log(`hello, ${name} (greeting #${count}, job ${job.id}, attempt ${job.attempt})`);

  return { greeting: `hello, ${name}`, count, effect_key: greetKey };
});
