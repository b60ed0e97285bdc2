"""Events between services: the outbox and its relay, the inbox, the consumer, provisioning
of topics and queues."""
