-- Webhook deliveries already processed, so that a redelivery (every platform delivers at least
-- once) is answered 200 without publishing again. The receiver inserts the row in the same
-- transaction as it publishes, and commits only once Kafka has acknowledged: a failed publish
-- rolls the row back and the platform's retry is processed. Rows older than any platform's retry
-- horizon (72 h for TikTok) are pruned by the receiver.
CREATE TABLE webhook_deliveries (
    platform     text NOT NULL,
    delivery_id  text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, delivery_id)
);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);
