-- A window TVF read without aggregation: HOP gives one row per window the row belongs to (two here),
-- with window_start, window_end and window_time.
-- golden: unordered
CREATE TABLE orders (
  id INT, currency STRING, amount INT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/orders.jsonl', 'format' = 'json');
CREATE TABLE o (id INT, ws TIMESTAMP(3), we TIMESTAMP(3), wt TIMESTAMP(3)) WITH ('connector' = 'print');
INSERT INTO o
SELECT id, window_start, window_end, window_time
FROM TABLE(HOP(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE))
WHERE id <= 3;
