-- The legacy group-window syntax of seed 000 (GROUP BY TUMBLE(ts, ...), TUMBLE_START/TUMBLE_END,
-- HOP(ts, slide, size) with HOP_END) gives the same windows as the window TVFs.
-- golden: unordered
CREATE TABLE clicks (
  `user` STRING, page STRING, ts TIMESTAMP(3), ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/clicks_ooo.jsonl', 'format' = 'json');
CREATE TABLE tumble_out (`user` STRING, w_start TIMESTAMP(3), w_end TIMESTAMP(3), last_page STRING, clicks BIGINT)
WITH ('connector' = 'print', 'print-identifier' = 'tumble');
CREATE TABLE hop_out (w_end TIMESTAMP(3), clicks BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'hop');
EXECUTE STATEMENT SET BEGIN
INSERT INTO tumble_out
SELECT `user`, TUMBLE_START(ts, INTERVAL '2' MINUTE), TUMBLE_END(ts, INTERVAL '2' MINUTE), LAST_VALUE(page), COUNT(*)
FROM clicks
WHERE page <> 'pay'
GROUP BY `user`, TUMBLE(ts, INTERVAL '2' MINUTE);
INSERT INTO hop_out
SELECT HOP_END(c.ts, INTERVAL '1' MINUTE, INTERVAL '2' MINUTE), COUNT(*)
FROM clicks AS c
GROUP BY HOP(c.ts, INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)
HAVING COUNT(*) > 1;
END;
