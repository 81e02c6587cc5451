"""{{name}}: a Spool job handler in Python.

Built into a WebAssembly component by `spool build` (componentize-py, world `handler` of
wit/job.wit). The `wit_world` package and `componentize_py_types` are generated at build time.

Payload: {"name": "ada"}. Greets the name, counts greetings per name in the idempotency store
(the count commits with the job, exactly once), logs a line, and returns
{"greeting": "hello, ada", "times": 1}.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import idempotency_store, log
from wit_world.imports.types import Failure_Permanent, Failure_Retry, Job


def permanent(message: str) -> Err:
    """A failure retrying cannot fix: the job goes to the dead-letter queue at once."""
    return Err(Failure_Permanent(message))


def retry(message: str) -> Err:
    """A transient failure: the job is retried with exponential backoff."""
    return Err(Failure_Retry(message))


class WitWorld(wit_world.WitWorld):
    def run(self, job: Job) -> bytes:
        """Returns the result bytes; raises `Err(Failure_*)` to fail the attempt."""
        try:
            payload = json.loads(job.payload or b"{}")
        except ValueError as e:
            raise permanent(f"payload is not JSON: {e}")
        name = payload.get("name", "world") if isinstance(payload, dict) else None
        if not isinstance(name, str) or not name:
            raise permanent('"name" must be a non-empty string')

        key = f"greetings/{name}"
        try:
            stored = idempotency_store.get(key)
            times = int(stored or b"0") + 1
            idempotency_store.put(key, str(times).encode())
        except Err as e:
            raise retry(f"store: {e.value}")

        log.log(log.Level.INFO, "greeted", [("name", name), ("times", str(times))])
        return json.dumps({"greeting": f"hello, {name}", "times": times}).encode()
