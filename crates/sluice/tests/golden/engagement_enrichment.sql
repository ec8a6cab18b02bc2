-- Seed 003's enrichment over the shipped example events: a computed column, a filter,
-- engagement_seconds as DECIMAL(26, 6) (Flink's BIGINT / 1000.0) and a NULL-safe percentage,
-- written as JSON lines through the filesystem sink. The malformed line is skipped.
CREATE TABLE engagement_events (
  id           BIGINT,
  content_id   STRING,
  user_id      STRING,
  event_type   STRING,
  event_ts     TIMESTAMP_LTZ(3),
  duration_ms  BIGINT,
  device       STRING,
  content      ROW<content_type STRING, length_seconds INT>,
  event_minute AS DATE_FORMAT(event_ts, 'yyyy-MM-dd HH:mm'),
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '${EXAMPLES}/data/engagement_events.jsonl',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE enriched (
  id                 BIGINT,
  content_id         STRING,
  event_type         STRING,
  content_type       STRING,
  engagement_seconds DOUBLE,
  engagement_pct     DOUBLE,
  exact_seconds      DECIMAL(26, 6),
  event_minute       STRING,
  event_ts           TIMESTAMP_LTZ(3)
) WITH (
  'connector' = 'filesystem',
  'path' = '${OUT}/enriched',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

INSERT INTO enriched
SELECT
  id,
  content_id,
  event_type,
  content.content_type,
  duration_ms / 1000.0,
  CASE
    WHEN content.length_seconds > 0
      THEN ROUND((duration_ms / 1000.0) / content.length_seconds * 100, 2)
    ELSE NULL
  END,
  duration_ms / 1000.0,
  event_minute,
  event_ts
FROM engagement_events
WHERE event_type <> 'click' AND duration_ms IS NOT NULL;
