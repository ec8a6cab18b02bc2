//! Randomized differential test: window aggregation (TUMBLE, HOP, CUMULATE), window Top-N and the
//! event-time temporal join against a small reference implementation, over random data, random
//! out-of-orderness and lateness, random batch splits and random parallelism.
//!
//! The engine runs in-process with a test connector: the source emits a fixed event sequence in
//! random batch sizes from one subtask (so which rows are late is defined by the sequence alone:
//! sluice emits a watermark before any row behind it, as Flink's per-event emission does), the
//! operators run at parallelism 1 to 3. The reference computes the same answers row by row, with its
//! own window assignment. `SLUICE_DIFF_CASES=N` runs more cases (default 24).

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sluice_common::{ConnectorCatalog, ConnectorError, SinkCaps, SluiceError, SourceCaps, StreamBatch, TableSpec};
use sluice_plan::{build_graph, Settings};
use sluice_runtime::{ConnectorRegistry, Metrics, Shutdown, Sink, SinkInit, Source, SourceContext, SourceInit};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
struct Event {
    user: String,
    kind: &'static str,
    id: i64,
    sid: Option<String>,
    v: i64,
    ts: i64,
}

const DDL: &str = "CREATE TABLE ev (`user` STRING, kind STRING, id BIGINT, sid STRING, v BIGINT, ts TIMESTAMP(3), \
     WATERMARK FOR ts AS ts - INTERVAL '{delay}' SECOND) WITH ('connector' = 'memory', 'scan.parallelism' = '1');\n";

/// Events in arrival order. With `late`, some rows arrive far behind; otherwise rows are only shuffled
/// within the watermark delay and searches never arrive behind the watermark.
fn events(rng: &mut SmallRng, delay_ms: i64, late: bool) -> Vec<Event> {
    let n = rng.random_range(50..600);
    let users = rng.random_range(2..12);
    let mut clock = 1_700_000_000_000i64;
    let mut watermark = i64::MIN;
    let mut out = Vec::with_capacity(n);
    for id in 0..n as i64 {
        clock += rng.random_range(0..4) * 100;
        let search = rng.random_bool(0.3);
        let mut ts = clock - rng.random_range(0..=delay_ms / 100) * 100;
        if late && rng.random_bool(0.08) {
            ts -= rng.random_range(1..120) * 1000;
        }
        if !late && ts <= watermark {
            ts = watermark + 100;
        }
        watermark = watermark.max(ts - delay_ms);
        let user = format!("u{}", rng.random_range(0..users));
        out.push(Event {
            user,
            kind: if search { "search" } else { "click" },
            id,
            sid: search.then(|| format!("s{id}")),
            v: rng.random_range(1..100),
            ts,
        });
    }
    out
}

fn batch(events: &[Event], spec: &TableSpec) -> RecordBatch {
    RecordBatch::try_new(
        spec.connector_schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.user.clone()))),
            Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.kind))),
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.id))),
            Arc::new(StringArray::from_iter(events.iter().map(|e| e.sid.clone()))),
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.v))),
            Arc::new(TimestampMillisecondArray::from_iter_values(events.iter().map(|e| e.ts))),
        ],
    )
    .expect("event batch")
}

/// The `memory` source and `collect` sink.
struct TestConnectors {
    events: Vec<Event>,
    seed: u64,
    rows: Arc<Mutex<Vec<String>>>,
}

impl ConnectorCatalog for TestConnectors {
    fn connectors(&self) -> Vec<&'static str> {
        vec!["memory", "collect"]
    }
    fn check_source(&self, _spec: &TableSpec) -> Result<SourceCaps, ConnectorError> {
        Ok(SourceCaps { bounded: true, changelog: false })
    }
    fn check_sink(&self, _spec: &TableSpec) -> Result<SinkCaps, ConnectorError> {
        Ok(SinkCaps { accepts_updates: true, exactly_once: true })
    }
}

struct MemorySource {
    data: Option<RecordBatch>,
    rng: SmallRng,
}

#[async_trait::async_trait]
impl Source for MemorySource {
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), SluiceError> {
        let Some(data) = self.data.take() else { return Ok(()) };
        let mut at = 0;
        while at < data.num_rows() {
            let len = self.rng.random_range(1..=64).min(data.num_rows() - at);
            ctx.emit(StreamBatch::append_only(data.slice(at, len))).await?;
            at += len;
        }
        Ok(())
    }

    fn position(&self) -> Vec<u8> {
        Vec::new()
    }
}

struct CollectSink {
    rows: Arc<Mutex<Vec<String>>>,
}

fn cell(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "null".into();
    }
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt64 => a.as_primitive::<datafusion::arrow::datatypes::UInt64Type>().value(i).to_string(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            a.as_primitive::<TimestampMillisecondType>().value(i).to_string()
        }
        other => panic!("unexpected output type {other}"),
    }
}

#[async_trait::async_trait]
impl Sink for CollectSink {
    async fn write_batch(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        let mut rows = self.rows.lock().expect("lock");
        for i in 0..batch.num_rows() {
            let cells: Vec<String> = batch.data.columns().iter().map(|c| cell(c.as_ref(), i)).collect();
            rows.push(format!("{}{}", batch.kind(i), cells.join(",")));
        }
        Ok(())
    }
    async fn finish(&mut self) -> Result<(), SluiceError> {
        Ok(())
    }
}

impl ConnectorRegistry for TestConnectors {
    fn create_sources(&self, spec: &TableSpec, init: &SourceInit) -> Result<Vec<Box<dyn Source>>, SluiceError> {
        let full = batch(&self.events, spec);
        let data = match &init.projection {
            Some(p) => full.project(p)?,
            None => full,
        };
        Ok((0..init.parallelism)
            .map(|i| -> Box<dyn Source> {
                Box::new(MemorySource { data: (i == 0).then(|| data.clone()), rng: SmallRng::seed_from_u64(self.seed) })
            })
            .collect())
    }
    fn create_sink(&self, _spec: &TableSpec, _init: &SinkInit) -> Result<Box<dyn Sink>, SluiceError> {
        Ok(Box::new(CollectSink { rows: self.rows.clone() }))
    }
}

/// Runs `sql` over `events`; the sorted rows written.
fn run(sql: &str, events: &[Event], seed: u64, parallelism: usize) -> Vec<String> {
    let connectors = Arc::new(TestConnectors { events: events.to_vec(), seed, rows: Arc::default() });
    let env = |_: &str| None;
    let set = [("parallelism.default".to_string(), parallelism.to_string())];
    let pipeline = sluice_sql::plan_script(sql, connectors.as_ref(), &set, &env)
        .unwrap_or_else(|e| panic!("plan failed: {e:?}\n{sql}"));
    let settings = Settings::from_map(&pipeline.settings, 1).expect("settings");
    let graph = build_graph(&pipeline, &settings).unwrap_or_else(|e| panic!("graph failed: {e:?}"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let registry: Arc<dyn ConnectorRegistry> = connectors.clone();
    rt.block_on(sluice_runtime::run_graph(
        &graph,
        registry,
        &settings.raw,
        &Metrics::default(),
        &Shutdown::new(),
        None,
    ))
    .unwrap_or_else(|e| panic!("run failed: {e}"));
    let mut rows = connectors.rows.lock().expect("lock").clone();
    rows.sort();
    rows
}

#[derive(Debug, Clone, Copy)]
enum Win {
    Tumble(i64),
    Hop(i64, i64),
    Cumulate(i64, i64),
}

impl Win {
    fn sql(self) -> String {
        let s = |ms: i64| format!("INTERVAL '{}' SECOND", ms / 1000);
        match self {
            Win::Tumble(size) => format!("TUMBLE(TABLE ev, DESCRIPTOR(ts), {})", s(size)),
            Win::Hop(slide, size) => format!("HOP(TABLE ev, DESCRIPTOR(ts), {}, {})", s(slide), s(size)),
            Win::Cumulate(step, size) => format!("CUMULATE(TABLE ev, DESCRIPTOR(ts), {}, {})", s(step), s(size)),
        }
    }

    /// Reference assignment: every window [start, end) holding `ts`, by enumeration.
    fn windows(self, ts: i64) -> Vec<(i64, i64)> {
        let floor = |t: i64, u: i64| t.div_euclid(u) * u;
        match self {
            Win::Tumble(size) => vec![(floor(ts, size), floor(ts, size) + size)],
            Win::Hop(slide, size) => {
                let mut out = Vec::new();
                let mut start = floor(ts, slide);
                while start + size > ts {
                    out.push((start, start + size));
                    start -= slide;
                }
                out
            }
            Win::Cumulate(step, size) => {
                let start = floor(ts, size);
                (1..=size / step).map(|k| (start, start + k * step)).filter(|(_, e)| *e > ts).collect()
            }
        }
    }

    /// End of the slice a row is added to: a row is late once that slice was fired.
    fn slice_end(self, ts: i64) -> i64 {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        let slice = match self {
            Win::Tumble(size) => size,
            Win::Hop(slide, size) => gcd(slide, size),
            Win::Cumulate(step, _) => step,
        };
        ts.div_euclid(slice) * slice + slice
    }
}

fn random_window(rng: &mut SmallRng) -> Win {
    let sec = |n: i64| n * 1000;
    match rng.random_range(0..3) {
        0 => Win::Tumble(sec(rng.random_range(1..8))),
        1 => {
            let slide = sec(rng.random_range(1..4));
            Win::Hop(slide, slide * rng.random_range(1..5) + sec(rng.random_range(0..2)))
        }
        _ => {
            let step = sec(rng.random_range(1..4));
            Win::Cumulate(step, step * rng.random_range(1..5))
        }
    }
}

/// (user, start, end) -> (count, sum) of the rows that are not late.
fn reference_windows(events: &[Event], win: Win, delay_ms: i64) -> BTreeMap<(String, i64, i64), (i64, i64)> {
    let mut out = BTreeMap::new();
    let mut watermark = i64::MIN;
    for e in events {
        if win.slice_end(e.ts) - 1 > watermark {
            for (s, end) in win.windows(e.ts) {
                let agg = out.entry((e.user.clone(), s, end)).or_insert((0, 0));
                agg.0 += 1;
                agg.1 += e.v;
            }
        }
        watermark = watermark.max(e.ts - delay_ms);
    }
    out
}

fn cases() -> u64 {
    std::env::var("SLUICE_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
}

#[test]
fn window_aggregation_matches_the_reference() {
    for seed in 0..cases() {
        let mut rng = SmallRng::seed_from_u64(seed);
        let delay = rng.random_range(0..4) * 1000;
        let events = events(&mut rng, delay, true);
        let win = random_window(&mut rng);
        let parallelism = rng.random_range(1..=3);
        let sql = format!(
            "{}CREATE TABLE o (`user` STRING, s TIMESTAMP(3), e TIMESTAMP(3), c BIGINT, v BIGINT) WITH ('connector' = 'collect');\n\
             INSERT INTO o SELECT `user`, window_start, window_end, COUNT(*), SUM(v) FROM TABLE({}) GROUP BY `user`, window_start, window_end;",
            DDL.replace("{delay}", &(delay / 1000).to_string()),
            win.sql()
        );
        let got = run(&sql, &events, seed, parallelism);
        let mut want: Vec<String> = reference_windows(&events, win, delay)
            .into_iter()
            .map(|((u, s, e), (c, v))| format!("+I{u},{s},{e},{c},{v}"))
            .collect();
        want.sort();
        assert_eq!(got, want, "seed {seed}: {win:?}, delay {delay} ms, parallelism {parallelism}");
    }
}

#[test]
fn window_top_n_matches_the_reference() {
    for seed in 0..cases() {
        let mut rng = SmallRng::seed_from_u64(1000 + seed);
        let delay = rng.random_range(0..4) * 1000;
        let events = events(&mut rng, delay, true);
        let slide = rng.random_range(1..4) * 1000;
        let win = Win::Hop(slide, slide * rng.random_range(1..4));
        let n = rng.random_range(1..4);
        let parallelism = rng.random_range(1..=3);
        let sql = format!(
            "{}CREATE TABLE o (s TIMESTAMP(3), e TIMESTAMP(3), `user` STRING, c BIGINT, rk BIGINT) WITH ('connector' = 'collect');\n\
             INSERT INTO o SELECT window_start, window_end, `user`, c, rk FROM (\
               SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY c DESC, `user` ASC) AS rk FROM (\
                 SELECT window_start, window_end, `user`, COUNT(*) AS c FROM TABLE({}) GROUP BY window_start, window_end, `user`)) \
             WHERE rk <= {n};",
            DDL.replace("{delay}", &(delay / 1000).to_string()),
            win.sql()
        );
        let got = run(&sql, &events, seed, parallelism);
        let mut per_window: BTreeMap<(i64, i64), Vec<(i64, String)>> = BTreeMap::new();
        for ((u, s, e), (c, _)) in reference_windows(&events, win, delay) {
            per_window.entry((s, e)).or_default().push((-c, u));
        }
        let mut want = Vec::new();
        for ((s, e), mut rows) in per_window {
            rows.sort();
            for (rank, (c, u)) in rows.into_iter().take(n).enumerate() {
                want.push(format!("+I{s},{e},{u},{},{}", -c, rank + 1));
            }
        }
        want.sort();
        assert_eq!(got, want, "seed {seed}: {win:?}, top {n}, delay {delay} ms, parallelism {parallelism}");
    }
}

#[test]
fn temporal_join_matches_the_reference() {
    for seed in 0..cases() {
        let mut rng = SmallRng::seed_from_u64(2000 + seed);
        let delay = rng.random_range(0..4) * 1000;
        let events = events(&mut rng, delay, false);
        let parallelism = rng.random_range(1..=3);
        let sql = format!(
            "{}CREATE VIEW latest AS SELECT `user`, sid, ts FROM (\
               SELECT *, ROW_NUMBER() OVER (PARTITION BY `user` ORDER BY ts DESC) AS rn FROM ev WHERE kind = 'search') WHERE rn = 1;\n\
             CREATE TABLE o (id BIGINT, sid STRING) WITH ('connector' = 'collect');\n\
             INSERT INTO o SELECT c.id, s.sid FROM ev AS c LEFT JOIN latest FOR SYSTEM_TIME AS OF c.ts AS s ON c.`user` = s.`user` \
             WHERE c.kind = 'click';",
            DDL.replace("{delay}", &(delay / 1000).to_string())
        );
        let got = run(&sql, &events, seed, parallelism);
        // Deduplication accepts a search when it is not older than the user's latest one so far; a
        // click sees the latest accepted search at or before its time.
        let mut versions: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
        for e in events.iter().filter(|e| e.kind == "search") {
            let list = versions.entry(&e.user).or_default();
            match list.last() {
                Some((t, _)) if e.ts < *t => {}
                Some((t, _)) if e.ts == *t => {
                    *list.last_mut().expect("non-empty") = (e.ts, e.sid.as_deref().expect("sid"))
                }
                _ => list.push((e.ts, e.sid.as_deref().expect("sid"))),
            }
        }
        let mut want: Vec<String> = events
            .iter()
            .filter(|e| e.kind == "click")
            .map(|c| {
                let sid = versions
                    .get(c.user.as_str())
                    .and_then(|l| l.iter().rev().find(|(t, _)| *t <= c.ts))
                    .map(|(_, s)| s.to_string())
                    .unwrap_or_else(|| "null".into());
                format!("+I{},{sid}", c.id)
            })
            .collect();
        want.sort();
        assert_eq!(got, want, "seed {seed}: delay {delay} ms, parallelism {parallelism}");
    }
}
