-- What the GraphQL API manages besides the registry: which platforms each tenant has enabled,
-- backfill requests, and the record of erasures (ids only, so it can also serve as a suppression
-- list for ingestion).

-- No row means enabled: a tenant starts with every platform on.
CREATE TABLE tenant_platforms (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform    text NOT NULL
                CHECK (platform IN ('instagram', 'facebook', 'youtube', 'tiktok', 'x')),
    enabled     boolean NOT NULL,
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, platform)
);

-- A request to recompute an influencer's figures over a range (from the raw observation log,
-- and by polling again where a platform allows history). Whoever runs it moves the status on.
CREATE TABLE backfill_requests (
    id             text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    influencer_id  text NOT NULL REFERENCES influencers (id) ON DELETE CASCADE,
    platform       text CHECK (platform IN ('instagram', 'facebook', 'youtube', 'tiktok', 'x')),
    range_start    timestamptz NOT NULL,
    range_end      timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'requested'
                   CHECK (status IN ('requested', 'running', 'done', 'failed')),
    detail         text,
    requested_by   text NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (range_start < range_end)
);
CREATE INDEX backfill_requests_pending_idx ON backfill_requests (status, requested_at);

-- One row per erasure: ids only (the influencer's name and handles are gone), who asked, and
-- what was removed where (row counts per table, cache entries, topics that got a tombstone).
CREATE TABLE erasures (
    id             text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    tenant_id      text NOT NULL,
    influencer_id  text NOT NULL,
    account_ids    text[] NOT NULL DEFAULT '{}',
    requested_by   text NOT NULL,
    erased_at      timestamptz NOT NULL DEFAULT now(),
    scope          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX erasures_influencer_idx ON erasures (influencer_id);
