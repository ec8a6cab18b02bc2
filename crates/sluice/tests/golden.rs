//! Runs every golden SQL case in `tests/golden` (see `sluice-testkit` for the format).

use sluice_testkit::{check, GoldenEnv};
use std::path::{Path, PathBuf};

fn env() -> GoldenEnv {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    GoldenEnv {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_sluice")),
        data: root.join("tests/golden/data"),
        examples: root.join("../../examples").canonicalize().expect("examples folder"),
    }
}

#[test]
fn golden_cases() {
    let env = env();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases found");
    let mut failures = Vec::new();
    // (restore runs, of which resumed from a savepoint)
    let mut restores = (0usize, 0usize);
    for case in &cases {
        let err_file = case.with_extension("err");
        let out_file = case.with_extension("out");
        let is_error_case = case.file_name().is_some_and(|n| n.to_string_lossy().starts_with("err_"));
        if is_error_case {
            let p = env.validate(case);
            if p.exit_code != Some(1) {
                failures.push(format!("{}: expected exit 1 from validate, got {:?}", case.display(), p.exit_code));
            }
            if let Err(e) = check(&err_file, &p.text) {
                failures.push(e);
            }
            continue;
        }
        let sql = std::fs::read_to_string(case).expect("read case");
        // Rows of different inputs (UNION ALL, statement sets) interleave in any order.
        let unordered = sql.lines().any(|l| l.trim() == "-- golden: unordered");
        let p1 = env.run(case, 1, unordered);
        if p1.exit_code != Some(0) {
            failures.push(format!("{}: run failed with {:?}:\n{}", case.display(), p1.exit_code, p1.stderr));
            continue;
        }
        if let Err(e) = check(&out_file, &p1.text) {
            failures.push(e);
            continue;
        }
        let p1_only = sql.starts_with("-- golden: parallelism 1 only");
        if !p1_only {
            let p2 = env.run(case, 2, true);
            if p2.exit_code != Some(0) || rows(&p1.text) != rows(&p2.text) {
                failures.push(format!(
                    "{}: parallelism 2 gives other rows than parallelism 1:\n{}\n{}",
                    case.display(),
                    p2.text,
                    p2.stderr
                ));
            }
        }
        // Checkpoint, stop, restore, finish: the same rows as the straight run.
        for parallelism in if p1_only { vec![1] } else { vec![1, 2] } {
            restores.0 += 1;
            match restored_gives_the_same_rows(&env, None, case, &sql, parallelism, &p1.text) {
                Ok(resumed) => restores.1 += resumed as usize,
                Err(e) => failures.push(e),
            }
        }
    }
    // Most cases are long enough for the stop to come before their input ends.
    assert!(
        restores.1 * 4 >= restores.0 * 3,
        "only {} of {} restore runs resumed from a savepoint",
        restores.1,
        restores.0
    );
    assert!(failures.is_empty(), "{} of {} golden cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The rows of a case's output, sorted (section headers dropped).
fn rows(text: &str) -> Vec<String> {
    let mut rows: Vec<String> = text.lines().filter(|l| !l.starts_with("# ")).map(String::from).collect();
    rows.sort();
    rows
}

/// Runs `case` as run -> savepoint after 3 source batches -> restore -> finish and compares its
/// rows with `straight`. Batches are one row, so the savepoint falls inside the input, except for
/// mini-batch aggregation, whose output depends on batch boundaries: it keeps the usual batches.
fn restored_gives_the_same_rows(
    env: &GoldenEnv,
    dir: Option<&Path>,
    case: &Path,
    sql: &str,
    parallelism: usize,
    straight: &str,
) -> Result<bool, String> {
    let batch_rows = if sql.contains("'table.exec.mini-batch.enabled' = 'true'") { None } else { Some(1) };
    let stop_after = if batch_rows.is_some() { 3 } else { 1 };
    let r = env.run_restored(dir, case, parallelism, batch_rows, stop_after);
    if r.exit_code != Some(0) || rows(&r.text) != rows(straight) {
        return Err(format!(
            "{} at parallelism {parallelism}: checkpoint -> stop -> restore gives other rows than a straight run:\n{}\n{}",
            case.display(),
            r.text,
            r.stderr
        ));
    }
    Ok(r.resumed)
}

/// Every `examples/NAME.sql` with an expectation `tests/golden/examples/NAME.out` runs from the
/// repository root exactly as the README shows, at parallelism 1 and 2, and gives the expected rows.
#[test]
fn examples_give_the_expected_rows() {
    let env = env();
    let expectations = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/examples");
    let root = env.examples.parent().expect("repository root").to_path_buf();
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&expectations).expect("expectations dir").flatten() {
        let out_file = entry.path();
        if out_file.extension().is_none_or(|e| e != "out") {
            continue;
        }
        let name = out_file.file_stem().expect("file name").to_string_lossy().to_string();
        let case = PathBuf::from("examples").join(format!("{name}.sql"));
        for parallelism in [1, 2] {
            let p = env.run_in(Some(&root), &case, parallelism, true);
            if p.exit_code != Some(0) {
                failures.push(format!("{name} at parallelism {parallelism} failed: {:?}\n{}", p.exit_code, p.stderr));
            } else if let Err(e) = check(&out_file, &p.text) {
                failures.push(format!("{name} at parallelism {parallelism}: {e}"));
            } else {
                let sql = std::fs::read_to_string(root.join(&case)).expect("read example");
                match restored_gives_the_same_rows(&env, Some(&root), &case, &sql, parallelism, &p.text) {
                    Ok(true) => {}
                    Ok(false) => failures.push(format!("{name} at parallelism {parallelism}: the stop came too late")),
                    Err(e) => failures.push(e),
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 2, "expected the clickstream and leaderboard examples to have expectations");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
