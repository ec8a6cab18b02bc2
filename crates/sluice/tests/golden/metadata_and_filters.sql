-- golden: parallelism 1 only (the aggregate's intermediate updates depend on arrival order)
-- Metadata columns of the filesystem source, a computed column over them, and aggregates with
-- FILTER (WHERE ...), MIN and MAX over a view.
CREATE TABLE plays (
  content_id  STRING,
  user_id     STRING,
  duration_ms INT,
  src         STRING METADATA FROM 'file.name' VIRTUAL,
  size        BIGINT METADATA FROM 'file.size',
  src_upper AS UPPER(src),
  PRIMARY KEY (content_id, user_id) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');

CREATE VIEW per_content (content_id, long_plays, shortest, longest, files) AS
SELECT
  content_id,
  COUNT(*) FILTER (WHERE duration_ms >= 100),
  MIN(duration_ms),
  MAX(duration_ms),
  COUNT(DISTINCT src_upper)
FROM plays
GROUP BY content_id;

CREATE TABLE o (content_id STRING, long_plays BIGINT, shortest INT, longest INT, files BIGINT)
WITH ('connector' = 'print', 'print-identifier' = 'stats');

CREATE TABLE sources (src STRING, src_upper STRING, size BIGINT)
WITH ('connector' = 'print', 'print-identifier' = 'files');

EXECUTE STATEMENT SET BEGIN
INSERT INTO o SELECT * FROM per_content WHERE content_id <> 'c';
INSERT INTO sources SELECT src, src_upper, size FROM plays WHERE content_id = 'b';
END;
