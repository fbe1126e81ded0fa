-- Hour and day rollups of the one-minute buckets on plain PostgreSQL: ordinary views with the
-- same names and columns as the TimescaleDB continuous aggregates of 0003_rollups.timescale.sql,
-- so every query works on both. Buckets are cut in UTC.

CREATE VIEW metric_buckets_1h AS
SELECT influencer_id, platform, metric,
       date_trunc('hour', bucket_start, 'UTC') AS bucket_start,
       sum(gain)::bigint AS gain,
       sum(observations)::bigint AS observations
FROM metric_buckets_1m
GROUP BY influencer_id, platform, metric, date_trunc('hour', bucket_start, 'UTC');

CREATE VIEW metric_buckets_1d AS
SELECT influencer_id, platform, metric,
       date_trunc('day', bucket_start, 'UTC') AS bucket_start,
       sum(gain)::bigint AS gain,
       sum(observations)::bigint AS observations
FROM metric_buckets_1m
GROUP BY influencer_id, platform, metric, date_trunc('day', bucket_start, 'UTC');
