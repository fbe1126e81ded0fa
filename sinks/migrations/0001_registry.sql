-- The registry: tenants, influencers, their platform accounts and the accounts' OAuth tokens.
-- Identifiers are text (UUIDs by default) so that Flink's JDBC sink, which binds strings, can
-- write them without casts.

CREATE TABLE tenants (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE influencers (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name <> ''),
    tags        text[] NOT NULL DEFAULT '{}',
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX influencers_tenant_name_idx ON influencers (tenant_id, name);
CREATE INDEX influencers_tags_idx ON influencers USING gin (tags);

CREATE TABLE platform_accounts (
    id             text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    influencer_id  text NOT NULL REFERENCES influencers (id) ON DELETE CASCADE,
    platform       text NOT NULL
                   CHECK (platform IN ('instagram', 'facebook', 'youtube', 'tiktok', 'x')),
    external_id    text NOT NULL,
    handle         text,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    poll_interval  interval NOT NULL DEFAULT interval '5 minutes'
                   CHECK (poll_interval >= interval '1 second'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, platform, external_id)
);
CREATE INDEX platform_accounts_influencer_idx ON platform_accounts (influencer_id);

-- Tokens are stored only as ciphertext (Fernet tokens made with a key from the settings);
-- key_id names the key that sealed them so that a key rotation can re-encrypt row by row.
CREATE TABLE oauth_credentials (
    account_id         text PRIMARY KEY REFERENCES platform_accounts (id) ON DELETE CASCADE,
    access_token_enc   bytea NOT NULL,
    refresh_token_enc  bytea,
    key_id             text NOT NULL,
    expires_at         timestamptz,
    scopes             text[] NOT NULL DEFAULT '{}',
    updated_at         timestamptz NOT NULL DEFAULT now()
);
