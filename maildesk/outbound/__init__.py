"""Mail out: composing, the durable outbox, and the transports that deliver it."""
