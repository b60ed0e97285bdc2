"""Tests of the services together and of what runs them: the embedded run
(`stories up`) and its fuzzing, processes under faults, migrations, the worker
process, the one book-read rule, tracing across services, compose, Terraform's
contract, the operator commands and the benchmark harness."""
