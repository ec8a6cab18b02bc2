//! Exactly-once across crashes: a real `sluice run` over a million events, checkpointing every
//! second, is killed with SIGKILL at random moments and restarted each time; the output it
//! committed at the end must equal the output of a run without failures, row for row (nothing lost,
//! nothing twice). The pipeline has a keyed window aggregation behind a hash exchange (state,
//! barrier alignment) and a projection (source positions), both into exactly-once filesystem sinks.
//!
//! The source is paced (`rows-per-second`) so that the run lasts long enough for the kills.
//! `SLUICE_CRASH_KILLS` sets the number of kills (default 20), `SLUICE_CRASH_EVENTS` the input size,
//! `SLUICE_CRASH_RATE` the pace and `SLUICE_CRASH_SEED` the kill moments.

use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The pipeline: a million sequence ids at `rate` rows per second (time is derived from the id,
/// so every run produces the same rows).
fn pipeline(dir: &Path, events: u64, rate: u64) -> String {
    format!(
        "SET 'parallelism.default' = '2';
CREATE TABLE events (
  id BIGINT,
  ts AS TO_TIMESTAMP_LTZ(1709251200000 + id * 5, 3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0',
        'fields.id.end' = '{last}', 'rows-per-second' = '{rate}');
CREATE VIEW v AS SELECT id, CONCAT('u', CAST(id % 1000 AS STRING)) AS `user`, CAST(id % 997 AS INT) AS ms, ts
  FROM events;
CREATE TABLE copied (id BIGINT, `user` STRING, ms INT)
  WITH ('connector' = 'filesystem', 'path' = '{d}/out/copied', 'format' = 'json');
CREATE TABLE per_minute (window_start TIMESTAMP(3), `user` STRING, n BIGINT, total INT)
  WITH ('connector' = 'filesystem', 'path' = '{d}/out/per_minute', 'format' = 'json');
EXECUTE STATEMENT SET BEGIN
INSERT INTO copied SELECT id, `user`, ms FROM v;
INSERT INTO per_minute
  SELECT window_start, `user`, COUNT(*), SUM(ms)
  FROM TABLE(TUMBLE(TABLE v, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
  GROUP BY window_start, window_end, `user`;
END;
",
        d = dir.display(),
        last = events - 1,
    )
}

/// Every committed (visible) row under `dir`, sorted.
fn committed_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if !name.starts_with('.') {
                let table = d.file_name().unwrap().to_string_lossy().to_string();
                rows.extend(std::fs::read_to_string(&p).unwrap().lines().map(|l| format!("{table}: {l}")));
            }
        }
    }
    rows.sort();
    rows
}

fn sluice(sql: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.arg("run").arg(sql).args(extra).env("SLUICE_LOG", "error").stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let kills = env_number("SLUICE_CRASH_KILLS", 20);
    let events = env_number("SLUICE_CRASH_EVENTS", 1_000_000);
    let rate = env_number("SLUICE_CRASH_RATE", 40_000);
    let work = tempfile::tempdir().unwrap();

    // The reference: a run without failures (and without checkpoints), at full speed.
    let reference_dir = work.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    let sql = reference_dir.join("p.sql");
    std::fs::write(&sql, pipeline(&reference_dir, events, 100_000_000)).unwrap();
    let started = Instant::now();
    let out = sluice(&sql, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let straight = started.elapsed();
    let want = committed_rows(&reference_dir.join("out"));
    assert!(want.len() as u64 > events, "the reference run wrote {} rows", want.len());

    // The same pipeline with checkpoints every second, killed `kills` times.
    let dir = work.path().join("crashing");
    std::fs::create_dir_all(&dir).unwrap();
    let sql = dir.join("p.sql");
    std::fs::write(&sql, pipeline(&dir, events, rate)).unwrap();
    let checkpoints = dir.join("checkpoints");
    let sets = [
        "--set".to_string(),
        "execution.checkpointing.interval=1s".to_string(),
        "--set".to_string(),
        format!("execution.checkpointing.dir={}", checkpoints.display()),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(env_number("SLUICE_CRASH_SEED", 7));
    let mut killed = 0;
    let mut finished = false;
    let mut attempts = 0;
    while killed < kills && attempts < kills * 3 {
        attempts += 1;
        let mut child = sluice(&sql, &sets).spawn().unwrap();
        // Random moments, long enough that most attempts complete a checkpoint or two.
        let wait = Duration::from_millis(rng.random_range(300..2_000));
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match child.try_wait().unwrap() {
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "a restarted run failed: {err}");
                finished = true;
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
            }
        }
    }
    assert!(killed >= kills.min(3), "only {killed} kills landed before the input ended (straight run: {straight:?})");
    if !finished {
        let out = sluice(&sql, &sets).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "the last restart failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let got = committed_rows(&dir.join("out"));
    if got != want {
        let (mut missing, mut extra) = (Vec::new(), Vec::new());
        let (mut i, mut j) = (0, 0);
        while i < want.len() || j < got.len() {
            match (want.get(i), got.get(j)) {
                (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
                (Some(a), Some(b)) if a < b => (missing.push(a.clone()), i += 1).1,
                (Some(_), Some(b)) => (extra.push(b.clone()), j += 1).1,
                (Some(a), None) => (missing.push(a.clone()), i += 1).1,
                (None, Some(b)) => (extra.push(b.clone()), j += 1).1,
                (None, None) => break,
            }
        }
        panic!(
            "after {killed} kills the committed output differs: {} rows missing (first: {:?}), {} extra (first: {:?})",
            missing.len(),
            missing.first(),
            extra.len(),
            extra.first()
        );
    }
    eprintln!("crash test: {killed} kills, {} rows committed exactly once (straight run {straight:?})", got.len());
}
