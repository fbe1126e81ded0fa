-- An erased influencer's data must not come back. Readings already on their way (in Kafka, in
-- the engagement job's state, in a sink's buffer) would otherwise write rows again after the
-- erasure deleted them. Every engagement table refuses rows of an influencer in `erasures`:
-- the row is skipped (the trigger returns NULL), so the job's upsert neither fails nor retries.
-- (erasures_influencer_idx of 0007 makes the check one index probe.)
CREATE FUNCTION skip_erased_influencer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM erasures WHERE influencer_id = NEW.influencer_id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER observations_skip_erased BEFORE INSERT ON observations
    FOR EACH ROW EXECUTE FUNCTION skip_erased_influencer();
CREATE TRIGGER metric_buckets_1m_skip_erased BEFORE INSERT ON metric_buckets_1m
    FOR EACH ROW EXECUTE FUNCTION skip_erased_influencer();
CREATE TRIGGER rolling_windows_skip_erased BEFORE INSERT ON rolling_windows
    FOR EACH ROW EXECUTE FUNCTION skip_erased_influencer();
CREATE TRIGGER derived_figures_skip_erased BEFORE INSERT ON derived_figures
    FOR EACH ROW EXECUTE FUNCTION skip_erased_influencer();
