"""Outbound webhooks: signed HTTP notifications of what happens in Tidings (a new inquiry, a
subscriber confirming or leaving, a campaign sent) to the clinic's other tools.

`events.queue_event` writes one delivery row per subscribed endpoint in the transaction of the
event (the durable outbox); `delivery` is the worker that posts them, signed per the Standard
Webhooks specification (`signing`), through an HTTP client that only talks to the addresses it
checked (`guard`, `client`). See docs/webhooks.md."""
