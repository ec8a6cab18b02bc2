-- golden: parallelism 1 only (the changelog order of one key depends on arrival order)
-- SUM over an updating input (the result of another GROUP BY): each change of a currency's total
-- retracts the old total and adds the new one (DataFusion's sliding SUM), and COUNT(*) counts
-- currencies, not changes.
CREATE TABLE orders (
  id BIGINT, currency STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3)
) WITH ('connector' = 'filesystem', 'path' = '${DATA}/orders.jsonl', 'format' = 'json');
CREATE TABLE overall (currencies BIGINT, total DECIMAL(38, 2)) WITH ('connector' = 'print');
INSERT INTO overall
SELECT COUNT(*), SUM(total) FROM (
  SELECT currency, SUM(amount) AS total FROM orders GROUP BY currency
);
