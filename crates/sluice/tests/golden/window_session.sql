-- golden: parallelism 1 only (late rows depend on subtask interleaving)
-- SESSION windows per user with a 45-second gap, as a window TVF with PARTITION BY and in the legacy
-- GROUP BY SESSION(...) form: out-of-order rows bridge and merge sessions; a row that opens no open
-- session after the watermark passed it is late.
CREATE TABLE clicks (
  `user` STRING, page STRING, ts TIMESTAMP(3), ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/clicks_ooo.jsonl', 'format' = 'json');
CREATE TABLE sessions (`user` STRING, s TIMESTAMP(3), e TIMESTAMP(3), clicks BIGINT, total_ms INT, pages BIGINT)
WITH ('connector' = 'print', 'print-identifier' = 'tvf');
CREATE TABLE legacy (`user` STRING, s TIMESTAMP(3), e TIMESTAMP(3), clicks BIGINT)
WITH ('connector' = 'print', 'print-identifier' = 'legacy');
EXECUTE STATEMENT SET BEGIN
INSERT INTO sessions
SELECT `user`, window_start, window_end, COUNT(*), SUM(ms), COUNT(DISTINCT page)
FROM TABLE(SESSION(TABLE clicks PARTITION BY `user`, DESCRIPTOR(ts), INTERVAL '45' SECOND))
GROUP BY `user`, window_start, window_end;
INSERT INTO legacy
SELECT `user`, SESSION_START(ts, INTERVAL '45' SECOND), SESSION_END(ts, INTERVAL '45' SECOND), COUNT(*)
FROM clicks
GROUP BY SESSION(ts, INTERVAL '45' SECOND), `user`;
END;
