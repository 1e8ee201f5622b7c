"""Schemathesis hooks of `npm run fuzz` (loaded through SCHEMATHESIS_HOOKS by scripts/fuzz/run).

POST /v1/admin/apps creates every topic of its `topics` array in Kafka. The schema allows 1000,
and the coverage phase sends arrays that long: a few of them create thousands of topics on the
(shared, development) broker in a minute, which loads Kafka more than it tests anything. In the
cases meant to be valid the array is cut to its first three distinct items (still valid, so the
case keeps its meaning; the run's dictionary of topics otherwise repeats items). Cases meant to be
invalid are left alone: the server refuses them whole, before Kafka, so they create nothing.
"""

import schemathesis

MAX_TOPICS_PER_APP = 3


@schemathesis.hook
def map_case(context, case):
    operation = context.operation
    if operation is None or operation.method.upper() != "POST" or operation.path != "/v1/admin/apps":
        return case
    meta = case.meta
    if meta is None or meta.generation.mode.value != "positive":
        return case
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("topics"), list):
        distinct = list(dict.fromkeys(t for t in body["topics"] if isinstance(t, str)))
        case.body = {**body, "topics": distinct[:MAX_TOPICS_PER_APP]}
    return case
