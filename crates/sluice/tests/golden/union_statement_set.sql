-- golden: unordered
-- A view, UNION ALL and a statement set writing two sinks from one file.
CREATE TABLE plays (
  content_id STRING,
  user_id    STRING,
  duration_ms INT
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');

CREATE TEMPORARY VIEW long_plays AS
SELECT content_id, user_id, duration_ms FROM plays WHERE duration_ms >= 100;

CREATE TABLE all_ids (id STRING, kind STRING) WITH ('connector' = 'filesystem', 'path' = '${OUT}/ids', 'format' = 'json');
CREATE TABLE long_ones (content_id STRING, seconds DOUBLE) WITH ('connector' = 'filesystem', 'path' = '${OUT}/long', 'format' = 'json');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO all_ids
  SELECT content_id, 'content' FROM plays
  UNION ALL
  SELECT user_id, 'user' FROM long_plays;

  INSERT INTO long_ones SELECT content_id, duration_ms / 1000.0 FROM long_plays;
END;
