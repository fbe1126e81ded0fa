"""The webhook receiver: signed pushes from the platforms become poll hints and content events.

A webhook is a hint, never a count: it makes the poller poll the account now (``engagement.hints``)
and carries comment text and content news to ``engagement.content``. Per delivery the receiver
checks the signature over the raw body (:mod:`.verify` and one module per scheme), maps the payload
(one module per platform), records the delivery id in PostgreSQL so that a redelivery is a no-op
(:mod:`.dedup`), and publishes before it answers 200 (:mod:`.publish`). :mod:`.app` is the
Starlette application, :mod:`.websub` the YouTube subscription client, :mod:`.cli` the command.
"""
