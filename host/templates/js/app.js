// @ts-check
/**
 * {{name}}: a Spool job handler in JavaScript.
 *
 * Built into a WebAssembly component by `spool build` (componentize-js, world `handler` of
 * wit/job.wit). Payload: {"name": "ada"}. Greets the name, counts greetings per name in the
 * idempotency store (the count commits with the job, exactly once), logs a line, and returns
 * {"greeting": "hello, ada", "times": 1}.
 */

import { get, put } from 'spool:job/idempotency-store@0.1.1';
import { log } from 'spool:job/log@0.1.1';

import { handler, payloadJson, permanent } from './spool.js';

// `handler` maps what the function throws: `retry(msg)` is retried with backoff,
// `permanent(msg)` is dead-lettered, and anything else is a bug whose stack goes to the log.
export const run = handler((job) => {
  const payload = /** @type {{name?: unknown}} */ (payloadJson(job) ?? {});
  const name = payload.name ?? 'world';
  if (typeof name !== 'string' || name === '') {
    throw permanent('"name" must be a non-empty string');
  }
  const key = `greetings/${name}`;
  const stored = get(key);
  const times = (stored === undefined ? 0 : Number(new TextDecoder().decode(stored))) + 1;
  put(key, new TextEncoder().encode(String(times)));
  log('info', 'greeted', [
    ['name', name],
    ['times', String(times)],
  ]);
  return { greeting: `hello, ${name}`, times };
});
