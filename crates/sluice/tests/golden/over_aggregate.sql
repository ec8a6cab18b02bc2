-- golden: parallelism 1 only (which rows are late depends on subtask interleaving)
-- OVER aggregation on event time, the way seed 000's users write "latest search so far":
-- LAST_VALUE skips NULLs as in Flink; rows come out in rowtime order once the watermark passes them;
-- RANGE lets rows of the same time see each other; rows behind the watermark are dropped as late.
-- (All OVER windows of one SELECT share one window, as Flink requires.)
CREATE TABLE clicks (
  `user` STRING, page STRING, ts TIMESTAMP(3), ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/clicks_ooo.jsonl', 'format' = 'json');
CREATE TABLE running (`user` STRING, ts TIMESTAMP(3), page STRING, last_pay STRING, n BIGINT, total INT, first_page STRING)
WITH ('connector' = 'print', 'print-identifier' = 'rows');
CREATE TABLE ticks (sym STRING, px INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'filesystem', 'path' = '${DATA}/ticks.jsonl', 'format' = 'json');
CREATE TABLE ranged (sym STRING, ts TIMESTAMP(3), px INT, n BIGINT, max_px INT) WITH ('connector' = 'print', 'print-identifier' = 'range');
EXECUTE STATEMENT SET BEGIN
INSERT INTO running
SELECT `user`, ts, page,
  LAST_VALUE(CASE WHEN page = 'pay' THEN page || '@' || CAST(ms AS STRING) END) OVER w,
  COUNT(*) OVER w, SUM(ms) OVER w, FIRST_VALUE(page) OVER w
FROM clicks
WINDOW w AS (PARTITION BY `user` ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
INSERT INTO ranged
SELECT sym, ts, px,
  COUNT(*) OVER (PARTITION BY sym ORDER BY ts),
  MAX(px) OVER (PARTITION BY sym ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
FROM ticks;
END;
