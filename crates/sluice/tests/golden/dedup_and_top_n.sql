-- golden: parallelism 1 only (the changelog order of one key depends on arrival order)
-- Deduplication keeping the first row per user by event time (rowtime ASC) and the last one (DESC),
-- and a Top-N over an updating aggregate: each change of a user's top-2 pages is emitted as Flink's
-- rank function does (-U/+U for a rank whose row changed, +I for a new rank).
CREATE TABLE clicks (
  `user` STRING, page STRING, ts TIMESTAMP(3), ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/clicks_ooo.jsonl', 'format' = 'json');
CREATE TABLE first_click (`user` STRING, page STRING, ts TIMESTAMP(3)) WITH ('connector' = 'print', 'print-identifier' = 'first');
CREATE TABLE last_click (`user` STRING, page STRING, ts TIMESTAMP(3)) WITH ('connector' = 'print', 'print-identifier' = 'last');
CREATE TABLE top_time (`user` STRING, page STRING, total_ms INT, rk BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'top');
EXECUTE STATEMENT SET BEGIN
INSERT INTO first_click
SELECT `user`, page, ts FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY `user` ORDER BY ts ASC) AS rn FROM clicks
) WHERE rn = 1;
INSERT INTO last_click
SELECT `user`, page, ts FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY `user` ORDER BY ts DESC) AS rn FROM clicks
) WHERE rn = 1;
INSERT INTO top_time
SELECT `user`, page, total_ms, rk FROM (
  SELECT `user`, page, total_ms, ROW_NUMBER() OVER (PARTITION BY `user` ORDER BY total_ms DESC) AS rk
  FROM (SELECT `user`, page, SUM(ms) AS total_ms FROM clicks GROUP BY `user`, page)
) WHERE rk <= 2;
END;
