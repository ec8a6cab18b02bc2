-- Seed 003's engagement enrichment over the sample file in examples/data, printed to stdout.
-- The events already carry their content's type and length; the lookup of the `content` table
-- (FOR SYSTEM_TIME AS OF) comes with the event-time work.
--
--   sluice run examples/engagement.sql

CREATE TABLE engagement_events (
  id           BIGINT,
  content_id   STRING,
  user_id      STRING,
  event_type   STRING,
  event_ts     TIMESTAMP_LTZ(3),
  duration_ms  INT,
  device       STRING,
  content      ROW<content_type STRING, length_seconds INT>,
  -- A computed column.
  event_day AS DATE_FORMAT(event_ts, 'yyyy-MM-dd'),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/engagement_events.jsonl',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE enriched_engagements (
  id                 BIGINT,
  content_id         STRING,
  user_id            STRING,
  event_type         STRING,
  content_type       STRING,
  engagement_seconds DECIMAL(26, 6),
  engagement_pct     DECIMAL(38, 2),
  event_day          STRING
) WITH (
  'connector' = 'print',
  'print-identifier' = 'enriched'
);

INSERT INTO enriched_engagements
SELECT
  id,
  content_id,
  user_id,
  event_type,
  content.content_type,
  duration_ms / 1000.0 AS engagement_seconds,
  CASE
    WHEN content.length_seconds > 0
      THEN ROUND((duration_ms / 1000.0) / content.length_seconds * 100, 2)
    ELSE NULL
  END AS engagement_pct,
  event_day
FROM engagement_events
WHERE event_type IN ('play', 'pause', 'finish');
