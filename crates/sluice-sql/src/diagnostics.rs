//! Planning errors with a place in the SQL file: `pipeline.sql:12:8: message`, then the line and a caret.

use std::fmt;

/// A 1-based line and column in the SQL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub fn from_location(l: datafusion::sql::sqlparser::tokenizer::Location) -> Option<Pos> {
        (l.line > 0).then_some(Pos { line: l.line, column: l.column })
    }
}

/// One planning error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub pos: Option<Pos>,
    pub message: String,
}

impl SqlError {
    pub fn new(pos: Option<Pos>, message: impl Into<String>) -> Self {
        SqlError { pos, message: message.into() }
    }
    pub fn at(span: datafusion::sql::sqlparser::tokenizer::Span, message: impl Into<String>) -> Self {
        SqlError { pos: Pos::from_location(span.start), message: message.into() }
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}: {}", p.line, p.column, self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// All errors of one file, rendered as `FILE:LINE:COL: message` with the source line and a caret.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: String,
    pub source: String,
    pub errors: Vec<SqlError>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.pos {
                Some(p) => {
                    writeln!(f, "{}:{}:{}: {}", self.file, p.line, p.column, e.message)?;
                    if let Some(text) = self.source.lines().nth((p.line - 1) as usize) {
                        let gutter = p.line.to_string();
                        writeln!(f, "{} | {}", gutter, text)?;
                        let pad: String = text
                            .chars()
                            .take((p.column as usize).saturating_sub(1))
                            .map(|c| if c == '\t' { '\t' } else { ' ' })
                            .collect();
                        write!(f, "{} | {}^", " ".repeat(gutter.len()), pad)?;
                    }
                }
                None => write!(f, "{}: {}", self.file, e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
