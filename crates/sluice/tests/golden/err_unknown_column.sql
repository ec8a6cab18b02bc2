CREATE TABLE clicks (
  userId STRING,
  url    STRING
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');
CREATE TABLE out_t (userId STRING, url STRING) WITH ('connector' = 'print');

INSERT INTO out_t
SELECT userid, url
FROM clicks;
