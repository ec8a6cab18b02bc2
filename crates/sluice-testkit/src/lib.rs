//! Dev-only helpers: the golden SQL test runner. A case is `tests/golden/NAME.sql` plus its
//! expectation `NAME.out` (rows written to stdout by `print` and to files under `${OUT}` by the
//! filesystem sink) or `NAME.err` (the exact `sluice validate` message for an invalid file).
//!
//! In the SQL, `${DATA}` is the golden data folder, `${EXAMPLES}` the repository's `examples/`
//! folder and `${OUT}` a fresh temporary folder. Each `.out` case runs at parallelism 1 (rows
//! compared in order, or sorted when the file has a line `-- golden: unordered`) and, unless its first
//! line is `-- golden: parallelism 1 only`, at parallelism 2 (rows compared sorted).
//! `SLUICE_GOLDEN=overwrite` rewrites expectations for review.
//!
//! Every `.out` case also runs as run -> checkpoint -> stop -> restore -> finish
//! ([`GoldenEnv::run_restored`]): the first run takes a savepoint after a few source batches and
//! exits, the second resumes from it; together they must give the rows of a straight run.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct GoldenEnv {
    /// The `sluice` binary under test.
    pub binary: PathBuf,
    pub data: PathBuf,
    pub examples: PathBuf,
}

/// What a case produced, normalized for comparison.
#[derive(Debug)]
pub struct Produced {
    pub text: String,
    pub exit_code: Option<i32>,
    pub stderr: String,
    /// [`GoldenEnv::run_restored`]: the second run resumed from the first one's savepoint (false
    /// when the input ended before the stop).
    pub resumed: bool,
}

/// Sends SIGTERM to `child` and waits (at most 20 s) for it to exit; its output.
pub fn terminate(mut child: std::process::Child) -> std::process::Output {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait for sluice").is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "sluice did not stop after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("sluice output")
}

pub fn overwrite() -> bool {
    std::env::var("SLUICE_GOLDEN").is_ok_and(|v| v == "overwrite")
}

impl GoldenEnv {
    fn command(&self, args: &[&str], out: &Path) -> Command {
        let mut c = Command::new(&self.binary);
        c.args(args).env("DATA", &self.data).env("EXAMPLES", &self.examples).env("OUT", out).env("SLUICE_LOG", "error");
        c
    }

    /// `sluice validate` on an invalid case: the error text with the case path made relative.
    pub fn validate(&self, case: &Path) -> Produced {
        let out = tempfile::tempdir().expect("temp dir");
        let output = self.command(&["validate", &case.display().to_string()], out.path()).output().expect("run sluice");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let name = case.file_name().expect("case file").to_string_lossy().to_string();
        Produced {
            text: stderr.replace(&case.display().to_string(), &name),
            exit_code: output.status.code(),
            stderr,
            resumed: false,
        }
    }

    /// `sluice run` at the given parallelism; rows from stdout and `${OUT}`.
    pub fn run(&self, case: &Path, parallelism: usize, sorted: bool) -> Produced {
        self.run_in(None, case, parallelism, sorted)
    }

    /// [`GoldenEnv::run`] with the working directory `dir` (examples use paths relative to the repository).
    pub fn run_in(&self, dir: Option<&Path>, case: &Path, parallelism: usize, sorted: bool) -> Produced {
        let out = tempfile::tempdir().expect("temp dir");
        let set = format!("parallelism.default={parallelism}");
        let mut command = self.command(&["run", &case.display().to_string(), "--set", &set], out.path());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let output = command.output().expect("run sluice");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        render(&stdout, out.path(), sorted, output.status.code(), stderr)
    }

    /// Runs `case` with checkpoints in two runs: the first stops with a savepoint once a source
    /// subtask emitted `stop_after` batches of `batch_rows` rows (`None`: the usual batch size);
    /// the second resumes from it and finishes. Rows are those of both runs (sorted).
    pub fn run_restored(
        &self,
        dir: Option<&Path>,
        case: &Path,
        parallelism: usize,
        batch_rows: Option<usize>,
        stop_after: usize,
    ) -> Produced {
        let out = tempfile::tempdir().expect("temp dir");
        let checkpoints = tempfile::tempdir().expect("temp dir");
        let sets = [
            format!("parallelism.default={parallelism}"),
            "execution.checkpointing.interval=1h".to_string(),
            format!("execution.checkpointing.dir={}", checkpoints.path().display()),
        ];
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut code = None;
        let mut resumed = false;
        for round in 0..2 {
            let case = case.display().to_string();
            let mut args = vec!["run", case.as_str()];
            for s in &sets {
                args.extend(["--set", s.as_str()]);
            }
            let mut command = self.command(&args, out.path());
            if let Some(dir) = dir {
                command.current_dir(dir);
            }
            if let Some(n) = batch_rows {
                command.env("SLUICE_TEST_BATCH_ROWS", n.to_string());
            }
            if round == 0 {
                command.env("SLUICE_TEST_STOP_AFTER_BATCHES", stop_after.to_string());
            }
            let output = command.output().expect("run sluice");
            stdout.push_str(&String::from_utf8_lossy(&output.stdout));
            stderr.push_str(&format!("--- run {} ---\n{}", round + 1, String::from_utf8_lossy(&output.stderr)));
            code = output.status.code();
            if code != Some(0) {
                break;
            }
            if round == 0 && !stderr.contains("savepoint:") {
                // The input ended before the stop: nothing to restore from.
                break;
            }
            resumed = round == 1 && stderr.contains("sluice: resuming from ");
        }
        Produced { resumed, ..render(&stdout, out.path(), true, code, stderr) }
    }
}

/// The text compared with an expectation: print rows, then rows of files under `out`.
fn render(stdout: &str, out: &Path, sorted: bool, exit_code: Option<i32>, stderr: String) -> Produced {
    {
        let mut stdout: Vec<String> = stdout.lines().map(normalize_print_line).collect();
        let mut files = read_output_files(out);
        if sorted {
            stdout.sort();
            files.sort();
        } else {
            // Sinks print concurrently: keep each sink's order, group the sinks (stable sort).
            stdout.sort_by_key(|l| l.split_once("> ").map(|(id, _)| id.to_string()).unwrap_or_default());
        }
        let mut text = String::new();
        if !stdout.is_empty() {
            text.push_str("# stdout\n");
            for l in &stdout {
                text.push_str(l);
                text.push('\n');
            }
        }
        if !files.is_empty() {
            text.push_str("# files\n");
            for l in &files {
                text.push_str(l);
                text.push('\n');
            }
        }
        Produced { text, exit_code, stderr, resumed: false }
    }
}

/// `id:2> +I[...]` -> `id> +I[...]`, `2> +I[...]` -> `+I[...]`: the subtask is not part of the result.
pub fn normalize_print_line(line: &str) -> String {
    if let Some((prefix, rest)) = line.split_once("> ") {
        if !prefix.contains(' ') && !prefix.contains('[') {
            let id = match prefix.rsplit_once(':') {
                Some((id, n)) if n.chars().all(|c| c.is_ascii_digit()) => id,
                _ if prefix.chars().all(|c| c.is_ascii_digit()) => "",
                _ => prefix,
            };
            return if id.is_empty() { rest.to_string() } else { format!("{id}> {rest}") };
        }
    }
    line.to_string()
}

/// Lines of every visible file under `dir`, files in path order, each line prefixed by the
/// file's folder relative to `dir` (the table's output folder).
pub fn read_output_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let folder =
            f.parent().and_then(|p| p.strip_prefix(dir).ok()).map(|p| p.display().to_string()).unwrap_or_default();
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        lines.extend(text.lines().map(|l| format!("{folder}: {l}")));
    }
    lines
}

/// Compares with the expectation file, or rewrites it in overwrite mode. Returns a diff message.
pub fn check(expected: &Path, actual: &str) -> Result<(), String> {
    if overwrite() {
        std::fs::write(expected, actual).map_err(|e| format!("cannot write {}: {e}", expected.display()))?;
        return Ok(());
    }
    let want = std::fs::read_to_string(expected)
        .map_err(|e| format!("{}: {e} (run with SLUICE_GOLDEN=overwrite to create it)", expected.display()))?;
    if want == actual {
        return Ok(());
    }
    let mut msg = format!("{} differs:\n", expected.display());
    let (w, a): (Vec<&str>, Vec<&str>) = (want.lines().collect(), actual.lines().collect());
    for i in 0..w.len().max(a.len()) {
        let (x, y) = (w.get(i).copied(), a.get(i).copied());
        if x != y {
            msg.push_str(&format!(
                "  line {}: expected {:?}\n           actual   {:?}\n",
                i + 1,
                x.unwrap_or("<none>"),
                y.unwrap_or("<none>")
            ));
        }
    }
    Err(msg)
}
