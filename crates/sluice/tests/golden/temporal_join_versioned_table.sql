-- Event-time temporal join against a versioned table (PRIMARY KEY + WATERMARK), Flink's currency
-- example: each order uses the rate valid at its own time. INNER drops orders without a version
-- (order 1 precedes every EUR rate, USD has none, a NULL key never matches); LEFT keeps them with NULLs.
-- golden: unordered
CREATE TABLE orders (
  id INT, currency STRING, amount INT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/orders.jsonl', 'format' = 'json');
CREATE TABLE rates (
  currency STRING, rate DECIMAL(10, 2), ts TIMESTAMP(3),
  PRIMARY KEY (currency) NOT ENFORCED,
  WATERMARK FOR ts AS ts
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/rates.jsonl', 'format' = 'json');
CREATE TABLE converted (id INT, amount INT, rate DECIMAL(10, 2), usd DECIMAL(21, 2), rate_since TIMESTAMP(3))
WITH ('connector' = 'print', 'print-identifier' = 'inner');
CREATE TABLE all_orders (id INT, currency STRING, rate DECIMAL(10, 2)) WITH ('connector' = 'print', 'print-identifier' = 'left');
EXECUTE STATEMENT SET BEGIN
INSERT INTO converted
SELECT o.id, o.amount, r.rate, o.amount * r.rate, r.ts
FROM orders AS o
JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency;
INSERT INTO all_orders
SELECT o.id, o.currency, r.rate
FROM orders AS o
LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON r.currency = o.currency;
END;
