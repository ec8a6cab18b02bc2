-- Benchmark (seeds 001/004): engagement seconds per content over HOP(1 minute, 10 minutes), top 10
-- per window -> blackhole. Input: bench/gen_events.py (1,000 events per second of event time).
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

CREATE TABLE leaderboard (
  window_end TIMESTAMP(3),
  content_id STRING,
  seconds    DECIMAL(38, 6),
  ranking    BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO leaderboard
SELECT window_end, content_id, seconds, ranking FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY seconds DESC) AS ranking
  FROM (
    SELECT window_start, window_end, content_id, SUM(duration_ms / 1000.0) AS seconds
    FROM TABLE(HOP(TABLE events, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE))
    WHERE event_type <> 'click'
    GROUP BY window_start, window_end, content_id
  )
) WHERE ranking <= 10;
