-- Benchmark: filesystem (JSON) -> filter + projection -> blackhole.
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
  content_id STRING,
  user_id STRING,
  event_type STRING,
  engagement_seconds DECIMAL(26, 6),
  device STRING
) WITH ('connector' = 'blackhole');

INSERT INTO sink
SELECT content_id, user_id, event_type, duration_ms / 1000.0, device
FROM events
WHERE event_type <> 'click' AND duration_ms > 1000;
