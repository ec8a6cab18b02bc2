-- HOP(30 s, 1 min) and CUMULATE(30 s, 1 min) over the same clicks with a generous watermark delay
-- (nothing is late): each window is computed once from 30-second panes. HOP windows overlap, so a
-- click counts in two of them; CUMULATE windows grow from the start of each minute.
-- golden: unordered
CREATE TABLE clicks (
  `user` STRING, page STRING, ts TIMESTAMP(3), ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/clicks_ooo.jsonl', 'format' = 'json');
CREATE TABLE hop_out (w_start TIMESTAMP(3), w_end TIMESTAMP(3), clicks BIGINT, users BIGINT, max_ms INT, min_ms INT)
WITH ('connector' = 'print', 'print-identifier' = 'hop');
CREATE TABLE cumulate_out (w_start TIMESTAMP(3), w_end TIMESTAMP(3), page STRING, clicks BIGINT, total_ms INT)
WITH ('connector' = 'print', 'print-identifier' = 'cumulate');
EXECUTE STATEMENT SET BEGIN
INSERT INTO hop_out
SELECT window_start, window_end, COUNT(*), COUNT(DISTINCT `user`), MAX(ms), MIN(ms)
FROM TABLE(HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '30' SECOND, INTERVAL '1' MINUTE))
GROUP BY window_start, window_end;
INSERT INTO cumulate_out
SELECT window_start, window_end, page, COUNT(*), SUM(ms)
FROM TABLE(CUMULATE(DATA => TABLE clicks, TIMECOL => DESCRIPTOR(ts), STEP => INTERVAL '30' SECOND, SIZE => INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, page;
END;
