-- The metrics table for target-postgres (meltanolabs-target-postgres), created before the first
-- load. target-postgres 0.8 maps every "date-time" to `timestamp without time zone` and every
-- "number" to `numeric`, whatever the schema says; a table that exists is kept as it is, so
-- creating it here gives a timezone-aware timestamp and a float value. The primary key is the
-- tap's (see README): re-read rows (lookback) are upserted, never duplicated.
--
--   psql "$DATABASE_URL" -v schema=cloudwatch -f warehouse/postgres.sql
CREATE SCHEMA IF NOT EXISTS :"schema";
CREATE TABLE IF NOT EXISTS :"schema".metrics (
    series_id      text             NOT NULL,
    region         text,
    account_id     text,
    namespace      text,
    metric_name    text,
    dimensions     jsonb,
    dimensions_key text,
    statistic      text             NOT NULL,
    period         bigint           NOT NULL,
    "timestamp"    timestamptz      NOT NULL,
    value          double precision,
    unit           text,
    PRIMARY KEY (series_id, statistic, period, "timestamp")
);
