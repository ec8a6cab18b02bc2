-- Benchmark: SESSION windows per content (2-minute gap) with COUNT and SUM -> blackhole.
-- Input: bench/gen_events.py.
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
  referrer    STRING,
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '${BENCH_INPUT}',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

CREATE TABLE sessions (content_id STRING, s TIMESTAMP(3), e TIMESTAMP(3), events BIGINT, ms BIGINT)
WITH ('connector' = 'blackhole');

INSERT INTO sessions
SELECT content_id, window_start, window_end, COUNT(*), SUM(duration_ms)
FROM TABLE(SESSION(TABLE events PARTITION BY content_id, DESCRIPTOR(event_ts), INTERVAL '2' MINUTE))
GROUP BY content_id, window_start, window_end;
