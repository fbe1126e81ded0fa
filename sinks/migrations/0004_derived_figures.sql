-- Figures derived per influencer x platform x window by the engagement job: follower growth
-- (absolute, and relative to the followers at the window start) and engagement rates under named
-- formulas. Each row keeps the numerator and denominator it was computed from; a figure whose
-- denominator is missing or zero has no row (missing, not zero).
CREATE TABLE derived_figures (
    influencer_id  text NOT NULL,
    platform       text NOT NULL,
    window_name    text NOT NULL,
    window_end     timestamptz NOT NULL,
    figure         text NOT NULL,
    formula        text NOT NULL,
    numerator      bigint NOT NULL,
    denominator    bigint,
    figure_value   double precision NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (influencer_id, platform, window_name, window_end, figure, formula)
);
CREATE INDEX derived_figures_latest_idx
    ON derived_figures (figure, formula, window_name, window_end DESC);
