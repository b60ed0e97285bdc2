"""`stories bench`: named benchmarks, each figure printed beside a baseline
measured in the same run on the same machine (which is shared and noisy, so
only ratios within one run mean much). One module per benchmark, the harness
they share in harness.py, the runner in run.py:

- plumbing: a bare endpoint through our app factory vs. the same endpoint in a
  plain FastAPI app; uvicorn with one worker, `wrk` in a separate process.
- access, content, delivery: each service's hot endpoints in a real service
  process beside the bare endpoint (content also measures tracing's cost).
- events: outbox -> SNS -> SQS -> consumer (the metrics service's real handler,
  PostgreSQL) vs. a raw SQS send/receive/delete loop, on one moto server:
  producers flat out (throughput) and a steady 100 events/s (latency). moto's
  receive slows as a queue grows, so flat-out figures are the emulator's as
  much as ours; compare rows only within a run.
- metrics: the metrics consumer vs. the raw SQS loop on waiting events, and the
  lag from a producer's commit until /v1/metrics/overview shows the event;
  `--emulator localstack` runs it on LocalStack.
- redis-pause: readers at work while Redis pauses and comes back.

Not in the image (.dockerignore): a deployment runs no benchmark.
"""
