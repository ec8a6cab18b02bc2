-- Benchmark (checkpoints): one GroupAggregate key per user of the click stream -> blackhole, so a
-- checkpoint holds ~1M keys of DataFusion accumulator state. Input: bench/gen_clicks.py.
CREATE TABLE clicks (
  eventTime  TIMESTAMP_LTZ(3),
  userId     STRING,
  eventType  STRING,
  WATERMARK FOR eventTime AS eventTime - INTERVAL '2' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '${BENCH_CLICKS}',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

CREATE TABLE per_user (userId STRING, events BIGINT, searches BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO per_user
SELECT userId, COUNT(*), COUNT(*) FILTER (WHERE eventType = 'search') FROM clicks GROUP BY userId;
