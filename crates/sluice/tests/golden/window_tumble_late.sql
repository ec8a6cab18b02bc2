-- golden: parallelism 1 only (which rows are late depends on how subtasks interleave)
-- TUMBLE over out-of-order clicks with a 10-second watermark delay. Rows behind the watermark whose
-- window has fired (bob 12:00:58, ann 12:00:30, cid 12:01:59) are dropped as in Flink and counted;
-- the empty minutes 12:02 and 12:03 emit nothing; the last window is emitted at end of input.
CREATE TABLE clicks (
  `user` STRING, page STRING, ts TIMESTAMP(3), ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/clicks_ooo.jsonl', 'format' = 'json');
CREATE TABLE per_minute (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), window_time TIMESTAMP(3), `user` STRING,
  clicks BIGINT, total_ms INT, pages BIGINT, first_page STRING, last_page STRING, avg_ms INT
) WITH ('connector' = 'print');
INSERT INTO per_minute
SELECT window_start, window_end, window_time, `user`, COUNT(*), SUM(ms), COUNT(DISTINCT page),
       FIRST_VALUE(page), LAST_VALUE(page), AVG(ms)
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, window_time, `user`;
