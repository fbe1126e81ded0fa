"""Local simulators of the five platform APIs, for the demo, the tests and the benchmark.

Each platform is a real HTTP app (Starlette, served by uvicorn) answering the platform's own
paths, query parameters, JSON shapes and types, pagination, error bodies, rate-limit behaviour
and OAuth token endpoints, and sending signed webhooks. All of them share one deterministic world.

Modules:

- ``world``: the seeded world, pure: accounts, posts and every counter as a function of time.
- ``clock``: :class:`~.clock.ManualClock` (tests drive it) and :class:`~.clock.RealClock`
  (real time, optionally sped up).
- ``config``: :class:`~.config.SimConfig`, every limit, lifetime and cost, real by default.
- ``limits``: sliding and fixed windows, and :class:`~.limits.Stats`, the per-credential count of
  requests and of requests beyond the limit.
- ``tokens``: initial tokens derived from the seed, expiry, refresh, rotation.
- ``signing``: each platform's webhook and handshake signatures.
- ``webhooks``: deliveries kept by id so that any can be sent again byte for byte.
- ``common``: the call pipeline (token, limit, forced faults, stats) and the admin surface.
- ``meta``, ``instagram``, ``facebook``, ``youtube``, ``tiktok``, ``x``: one app per platform.
- ``server``: :func:`~.server.build` and :class:`~.server.Simulators` (start on port 0, stop).
- ``cli``: ``creatorpulse simulate``; ``bench``: a rough throughput figure.

Python API (tests)::

    from creatorpulse.sources.simulator.clock import ManualClock
    from creatorpulse.sources.simulator.config import SimConfig
    from creatorpulse.sources.simulator.server import Simulators, build

    clock = ManualClock(1_790_000_000.0)
    sims = Simulators.start(build(SimConfig(accounts=50, x_limit=5), clock), ports=0)
    sims.urls["x"]                  # http://127.0.0.1:<free port>
    clock.advance(3600)             # the world moves on; tokens may expire
    sims.apps["x"].stats.snapshot() # requests and over-limit requests per credential
    sims.stop()

Admin surface, on every platform's server under ``/_sim/`` (a path no platform has):

- ``GET /_sim/health``: 200 once the server answers.
- ``GET /_sim/accounts?offset=&limit=``: the seeded accounts (``index`` *i* is the same
  creator, with the same handle, on every platform): ``index``, ``id`` (the platform's
  id: IG user, Page, ``UC...`` channel, TikTok ``open_id``, X user), ``handle``, ``name``,
  ``access_token``, ``refresh_token``, ``expires_at``.
- ``GET /_sim/stats``: ``credentials`` and ``apps``, each ``{requests, over_limit}``; totals.
  ``POST /_sim/stats/reset`` clears them.
- ``GET /_sim/clock``; ``POST /_sim/clock`` with ``{"advance": seconds}`` (any clock) or
  ``{"set": unix_seconds}`` (manual clock).
- ``GET /_sim/content/{id}``: a post's publication, deletion and counters now (a test oracle).
- ``POST /_sim/delete`` ``{"content_id"}``: delete a post now.
- ``POST /_sim/errors`` ``{"count", "status"}``: the next API calls fail with the platform's
  transient error body and that status (default 500); with ``"throttle": true`` they answer
  the platform's rate-limit error instead (Meta: ``"code"`` 4, 17, 32, 613, 80001 or 80002;
  YouTube: ``"code": "rateLimitExceeded"`` or the default ``quotaExceeded``). Forced answers
  are not counted as over-limit.
- ``POST /_sim/tokens/expire`` / ``/_sim/tokens/revoke`` ``{"account"}``: an account's access
  tokens expire now / every token of the account stops working.
- ``POST /_sim/webhooks`` ``{"account", "event"?, "content_id"?, ...}``: build, sign and send a
  webhook; answers the deliveries with their ``delivery_id``. ``GET /_sim/webhooks`` lists them.
  ``POST /_sim/webhooks/redeliver`` ``{"delivery_id", "times"}`` sends one again, same bytes.
- YouTube only: ``GET /_sim/websub``, the hub's verified subscriptions.

Webhook events: Instagram ``comments`` (default), ``mentions``; Facebook ``feed`` items
(``item``: ``comment`` default, ``reaction``, ``status``...); YouTube ``video`` (default),
``deleted`` (tombstone); TikTok ``video.publish.completed`` (default), ``authorization.removed``;
X ``favorite_events`` (default), ``tweet_create_events``, ``tweet_delete_events``,
``follow_events``. Deliveries go to the subscribed callback (Meta ``/{app-id}/subscriptions``,
X ``/2/webhooks``), else to ``CREATORPULSE_WEBHOOKS_URL`` + ``/webhooks/<platform>``; YouTube's
hub pushes only to callbacks subscribed (and verified) through ``POST /subscribe``.
"""
