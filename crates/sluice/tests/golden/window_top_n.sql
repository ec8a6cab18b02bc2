-- Window Top-N (seed 001's leaderboard shape): the top 2 pages per HOP window by clicks, ties broken
-- by the further ORDER BY key; emitted once per window when the watermark passes its end.
-- golden: unordered
CREATE TABLE clicks (
  `user` STRING, page STRING, ts TIMESTAMP(3), ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/clicks_ooo.jsonl', 'format' = 'json');
CREATE TABLE top_pages (w_end TIMESTAMP(3), page STRING, clicks BIGINT, total_ms INT, rk BIGINT)
WITH ('connector' = 'print');
INSERT INTO top_pages
SELECT window_end, page, clicks, total_ms, rk FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY clicks DESC, page ASC) AS rk
  FROM (
    SELECT window_start, window_end, page, COUNT(*) AS clicks, SUM(ms) AS total_ms
    FROM TABLE(HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE))
    GROUP BY window_start, window_end, page
  )
) WHERE rk <= 2;
