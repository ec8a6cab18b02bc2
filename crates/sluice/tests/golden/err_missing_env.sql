CREATE TABLE src (a INT) WITH (
  'connector' = 'filesystem',
  'path' = '${SLUICE_TEST_DEFINITELY_UNSET}/in.jsonl',
  'format' = 'json'
);
CREATE TABLE dst (a INT) WITH ('connector' = 'blackhole');
INSERT INTO dst SELECT a FROM src;
