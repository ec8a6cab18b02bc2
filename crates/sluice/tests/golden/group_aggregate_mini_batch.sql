-- golden: parallelism 1 only (intermediate updates depend on arrival order across subtasks)
-- With mini-batch aggregation the rows of one input batch are folded per key: only net changes.
SET 'table.exec.mini-batch.enabled' = 'true';
CREATE TABLE plays (
  content_id STRING,
  user_id    STRING,
  duration_ms INT
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');

CREATE TABLE totals (
  content_id STRING,
  plays      BIGINT,
  users      BIGINT,
  total_ms   BIGINT,
  avg_ms     DOUBLE,
  max_ms     INT
) WITH ('connector' = 'print', 'print-identifier' = 'totals');

INSERT INTO totals
SELECT content_id, COUNT(*), COUNT(DISTINCT user_id), SUM(duration_ms), AVG(duration_ms), MAX(duration_ms)
FROM plays
GROUP BY content_id;
