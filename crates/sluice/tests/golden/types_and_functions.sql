-- Flink types read from JSON and printed as Flink prints them, and Flink's function semantics:
-- CONCAT is NULL when an argument is NULL, integer division truncates, ROUND is HALF_UP,
-- DECIMAL arithmetic keeps its scale, nested fields, CAST to STRING, COALESCE, CASE.
CREATE TABLE t (
  `id`      INT,
  price     DECIMAL(10, 2),
  qty       BIGINT,
  ratio     DOUBLE,
  flag      BOOLEAN,
  name      VARCHAR(20),
  tags      ARRAY<STRING>,
  attrs     MAP<STRING, STRING>,
  meta      ROW<device STRING, os ROW<name STRING, version INT>>,
  day       DATE,
  ts        TIMESTAMP(3),
  payload   STRING /* a JSON document, read with JSON_VALUE */
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/types.jsonl', 'format' = 'json');

CREATE TABLE o (
  id INT, total DECIMAL(21, 2), half BIGINT, rounded DOUBLE, label STRING, device STRING,
  os_version INT, first_tag STRING, attr STRING, name_len INT, id_text STRING, json_city STRING,
  day DATE, ts TIMESTAMP(3), flag BOOLEAN, bucket STRING
) WITH ('connector' = 'print');

INSERT INTO o
SELECT
  `id`,
  price * qty,
  qty / 2,
  ROUND(ratio, 1),
  CONCAT(name, '-', CAST(`id` AS STRING)),
  meta.device,
  meta.os.version,
  tags[1],
  attrs['k'],
  CHAR_LENGTH(name),
  CAST(`id` AS STRING),
  JSON_VALUE(payload, '$.address.city'),
  day,
  ts,
  flag,
  CASE WHEN qty > 10 THEN 'big' WHEN qty > 0 THEN 'small' ELSE COALESCE(name, 'none') END
FROM t;
