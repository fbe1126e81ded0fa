-- Engagement data written by the Flink jobs: the raw observation log, one-minute buckets of
-- gains, and rolling-window values. Metric names are data, not columns: a new metric needs no
-- migration. Every primary key holds the time column, as TimescaleDB hypertables require.

-- Every observation ever read, including those that arrived too late for the streaming windows;
-- the reconciliation job recomputes buckets from here. Upserts on event_id are idempotent.
CREATE TABLE observations (
    event_id       text NOT NULL,
    observed_at    timestamptz NOT NULL,
    platform       text NOT NULL,
    account_id     text NOT NULL,
    influencer_id  text NOT NULL,
    content_id     text,
    content_kind   text NOT NULL,
    metric         text NOT NULL,
    value          bigint NOT NULL,
    provenance     text NOT NULL CHECK (provenance IN ('measured', 'estimated', 'rounded')),
    late           boolean NOT NULL DEFAULT false,
    ingested_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, observed_at)
);
CREATE INDEX observations_counter_idx
    ON observations (platform, account_id, content_id, metric, observed_at);
CREATE INDEX observations_influencer_idx ON observations (influencer_id, observed_at);

-- Gains per influencer x platform x metric and minute. platform = 'all' holds the total across
-- platforms. provenance is the weakest of the inputs (rounded < estimated < measured).
CREATE TABLE metric_buckets_1m (
    influencer_id  text NOT NULL,
    platform       text NOT NULL,
    metric         text NOT NULL,
    bucket_start   timestamptz NOT NULL,
    gain           bigint NOT NULL,
    observations   integer NOT NULL,
    provenance     text NOT NULL CHECK (provenance IN ('measured', 'estimated', 'rounded')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (influencer_id, platform, metric, bucket_start)
);
CREATE INDEX metric_buckets_1m_time_idx ON metric_buckets_1m (bucket_start);

-- Sliding-window values, one row per window and slide ('1h' every minute, '24h' every five
-- minutes, '7d' every hour by default). value_at_start / value_at_end are the counter's values
-- at the window's edges where known (growth % divides by value_at_start).
CREATE TABLE rolling_windows (
    influencer_id   text NOT NULL,
    platform        text NOT NULL,
    metric          text NOT NULL,
    window_name     text NOT NULL,
    window_end      timestamptz NOT NULL,
    window_start    timestamptz NOT NULL,
    gain            bigint NOT NULL,
    value_at_start  bigint,
    value_at_end    bigint,
    provenance      text NOT NULL CHECK (provenance IN ('measured', 'estimated', 'rounded')),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (influencer_id, platform, metric, window_name, window_end),
    CHECK (window_start < window_end)
);
CREATE INDEX rolling_windows_latest_idx
    ON rolling_windows (window_name, metric, platform, window_end DESC);
