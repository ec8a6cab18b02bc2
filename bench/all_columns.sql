-- Benchmark: as filter_project.sql, but every column is decoded and projected (no column pruning).
CREATE TABLE events (
  id          BIGINT,
  event_id    STRING,
  user_id     STRING,
  content_id  STRING,
  event_type  STRING,
  event_ts    TIMESTAMP_LTZ(3),
  duration_ms BIGINT,
  device      STRING,
  app_version STRING,
  session_id  STRING,
  referrer    STRING
) WITH (
  'connector' = 'filesystem',
  'path' = '${BENCH_INPUT}',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

CREATE TABLE sink (
  id BIGINT, event_id STRING, user_id STRING, content_id STRING, event_type STRING,
  event_ts TIMESTAMP_LTZ(3), engagement_seconds DECIMAL(26, 6), device STRING,
  app_version STRING, session_id STRING, referrer STRING
) WITH ('connector' = 'blackhole');

INSERT INTO sink
SELECT id, event_id, user_id, content_id, event_type, event_ts, duration_ms / 1000.0, device,
  app_version, session_id, referrer
FROM events
WHERE event_type <> 'click' AND duration_ms > 1000;
