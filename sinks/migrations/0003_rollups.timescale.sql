-- creatorpulse: no-transaction
-- TimescaleDB: hypertables, continuous aggregates for hour and day rollups (real-time, so the
-- newest minutes are included, as in the plain views), retention and compression. Continuous
-- aggregates cannot be created inside a transaction, so each statement commits on its own.

CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('observations', by_range('observed_at', INTERVAL '1 day'), migrate_data => true);
SELECT create_hypertable('metric_buckets_1m', by_range('bucket_start', INTERVAL '1 day'), migrate_data => true);
SELECT create_hypertable('rolling_windows', by_range('window_end', INTERVAL '1 day'), migrate_data => true);

CREATE MATERIALIZED VIEW metric_buckets_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT influencer_id, platform, metric,
       time_bucket(INTERVAL '1 hour', bucket_start) AS bucket_start,
       sum(gain)::bigint AS gain,
       sum(observations)::bigint AS observations
FROM metric_buckets_1m
GROUP BY influencer_id, platform, metric, time_bucket(INTERVAL '1 hour', bucket_start)
WITH NO DATA;

CREATE MATERIALIZED VIEW metric_buckets_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT influencer_id, platform, metric,
       time_bucket(INTERVAL '1 day', bucket_start) AS bucket_start,
       sum(gain)::bigint AS gain,
       sum(observations)::bigint AS observations
FROM metric_buckets_1m
GROUP BY influencer_id, platform, metric, time_bucket(INTERVAL '1 day', bucket_start)
WITH NO DATA;

-- Reconciliation rewrites buckets up to a week back: refresh that far so repairs reach the rollups.
SELECT add_continuous_aggregate_policy('metric_buckets_1h',
    start_offset => INTERVAL '8 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('metric_buckets_1d',
    start_offset => INTERVAL '8 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');

ALTER TABLE observations SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'platform, account_id',
    timescaledb.compress_orderby = 'observed_at DESC');
SELECT add_compression_policy('observations', INTERVAL '8 days');
ALTER TABLE metric_buckets_1m SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'influencer_id, platform',
    timescaledb.compress_orderby = 'bucket_start DESC');
SELECT add_compression_policy('metric_buckets_1m', INTERVAL '8 days');

-- Raw readings are kept for a year, minute buckets for 90 days, window values for 30 days; the
-- hour and day rollups are kept for good.
SELECT add_retention_policy('observations', INTERVAL '365 days');
SELECT add_retention_policy('metric_buckets_1m', INTERVAL '90 days');
SELECT add_retention_policy('rolling_windows', INTERVAL '30 days');
