//! A `.sql` file as a list of statements: split on `;` (statement sets keep their inner `;`), each
//! parsed on its own so that one bad statement does not hide the errors of the others.
//!
//! Flink statements handled here: `CREATE [TEMPORARY] TABLE` (see [`crate::ddl`]),
//! `CREATE [TEMPORARY] VIEW`, `INSERT INTO ... SELECT`, `EXECUTE STATEMENT SET BEGIN ... END`
//! (and the older `BEGIN STATEMENT SET; ... END;`), `SET 'key' = 'value'`.

use crate::ddl::{parse_create_table_body, TableDef};
use crate::diagnostics::{Pos, SqlError};
use crate::dialect::FlinkDialect;
use datafusion::sql::sqlparser::ast::{Ident, ObjectName, Query, Statement as AstStatement, TableObject};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer, Whitespace};

#[derive(Debug, Clone)]
pub enum Statement {
    CreateTable(Box<TableDef>),
    CreateView { name: ObjectName, columns: Vec<Ident>, query: Box<Query>, span: Span },
    Insert(InsertDef),
    StatementSet(Vec<InsertDef>),
    Set { key: String, value: String, span: Span },
}

#[derive(Debug, Clone)]
pub struct InsertDef {
    pub table: ObjectName,
    pub columns: Vec<Ident>,
    pub query: Box<Query>,
    pub span: Span,
}

/// Parses a whole file. Returns every statement that parsed and every error (in file order).
pub fn parse_script(sql: &str) -> (Vec<Statement>, Vec<SqlError>) {
    let tokens = match Tokenizer::new(&FlinkDialect, sql).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => return (vec![], vec![SqlError::new(Pos::from_location(e.location), e.message)]),
    };
    let mut statements = Vec::new();
    let mut errors = Vec::new();
    let mut set_members: Option<(Vec<InsertDef>, Span)> = None;
    for mut chunk in split_statements(tokens) {
        let words = leading_words(&chunk, 4);
        let starts_set = words.iter().map(String::as_str).eq(["EXECUTE", "STATEMENT", "SET", "BEGIN"]);
        let starts_legacy_set = words.iter().take(3).map(String::as_str).eq(["BEGIN", "STATEMENT", "SET"]);
        if starts_set || starts_legacy_set {
            if set_members.is_some() {
                errors.push(SqlError::at(first_span(&chunk), "statement sets cannot be nested"));
            }
            let span = first_span(&chunk);
            drop_leading_words(&mut chunk, if starts_set { 4 } else { 3 });
            set_members = Some((Vec::new(), span));
            if !has_content(&chunk) {
                continue;
            }
        }
        if set_members.is_some() && leading_words(&chunk, 2) == ["END"] {
            let (members, _) = set_members.take().expect("checked above");
            statements.push(Statement::StatementSet(members));
            continue;
        }
        if !has_content(&chunk) {
            continue;
        }
        match parse_statement(chunk) {
            Ok(Statement::Insert(insert)) if set_members.is_some() => {
                set_members.as_mut().expect("checked").0.push(insert)
            }
            Ok(other) if set_members.is_some() => errors.push(SqlError::new(
                statement_pos(&other),
                "only INSERT statements are allowed inside EXECUTE STATEMENT SET",
            )),
            Ok(s) => statements.push(s),
            Err(e) => errors.push(e),
        }
    }
    if let Some((_, span)) = set_members {
        errors.push(SqlError::at(span, "statement set is not closed: expected END"));
    }
    (statements, errors)
}

fn statement_pos(s: &Statement) -> Option<Pos> {
    match s {
        Statement::CreateTable(t) => {
            t.name.0.first().and_then(|p| p.as_ident()).and_then(|i| Pos::from_location(i.span.start))
        }
        Statement::CreateView { span, .. } | Statement::Set { span, .. } => Pos::from_location(span.start),
        Statement::Insert(i) => Pos::from_location(i.span.start),
        Statement::StatementSet(_) => None,
    }
}

fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for t in tokens {
        match t.token {
            Token::SemiColon => out.push(std::mem::take(&mut current)),
            Token::EOF => {}
            _ => current.push(t),
        }
    }
    out.push(current);
    out
}

fn significant(t: &TokenWithSpan) -> bool {
    !matches!(t.token, Token::Whitespace(_) | Token::EOF)
}

fn has_content(chunk: &[TokenWithSpan]) -> bool {
    chunk.iter().any(significant)
}

fn first_span(chunk: &[TokenWithSpan]) -> Span {
    chunk.iter().find(|t| significant(t)).map(|t| t.span).unwrap_or(Span::empty())
}

fn leading_words(chunk: &[TokenWithSpan], n: usize) -> Vec<String> {
    chunk
        .iter()
        .filter(|t| significant(t))
        .take(n)
        .map(|t| match &t.token {
            Token::Word(w) => w.value.to_ascii_uppercase(),
            other => other.to_string(),
        })
        .collect()
}

fn drop_leading_words(chunk: &mut Vec<TokenWithSpan>, n: usize) {
    let mut seen = 0;
    let cut = chunk
        .iter()
        .position(|t| {
            if significant(t) {
                seen += 1;
            }
            seen > n
        })
        .unwrap_or(chunk.len());
    chunk.drain(..cut);
}

fn parse_statement(chunk: Vec<TokenWithSpan>) -> Result<Statement, SqlError> {
    let span = first_span(&chunk);
    let chunk = rewrite_window_tvf_tokens(chunk);
    let mut p = Parser::new(&FlinkDialect).with_tokens_with_locations(chunk);
    let stmt = parse_with(&mut p, span).map_err(|e| parser_error(e, &p))?;
    let rest = p.peek_token();
    if rest.token != Token::EOF {
        return Err(SqlError::at(rest.span, format!("unexpected '{}' after the end of the statement", rest.token)));
    }
    Ok(stmt)
}

fn parse_with(p: &mut Parser, span: Span) -> Result<Statement, ParserError> {
    if p.parse_keyword(Keyword::CREATE) {
        let temporary = p.parse_keyword(Keyword::TEMPORARY);
        if p.parse_keyword(Keyword::TABLE) {
            return Ok(Statement::CreateTable(Box::new(parse_create_table_body(p, temporary)?)));
        }
        if p.parse_keyword(Keyword::VIEW) {
            let _ = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = p.parse_object_name(false)?;
            let columns = if p.consume_token(&Token::LParen) {
                let c = p.parse_comma_separated(|p| p.parse_identifier())?;
                p.expect_token(&Token::RParen)?;
                c
            } else {
                vec![]
            };
            p.expect_keyword(Keyword::AS)?;
            let query = p.parse_query()?;
            return Ok(Statement::CreateView { name, columns, query, span });
        }
        return p.expected("TABLE or VIEW after CREATE", p.peek_token());
    }
    if matches!(&p.peek_token().token, Token::Word(w) if w.keyword == Keyword::SET) {
        p.next_token();
        let key = parse_set_word(p)?;
        p.expect_token(&Token::Eq)?;
        let value = parse_set_word(p)?;
        return Ok(Statement::Set { key, value, span });
    }
    if matches!(&p.peek_token().token, Token::Word(w) if w.keyword == Keyword::INSERT) {
        return match p.parse_statement()? {
            AstStatement::Insert(insert) => {
                let table = match insert.table {
                    TableObject::TableName(n) => n,
                    other => return Err(ParserError::ParserError(format!("cannot insert into {other}"))),
                };
                let Some(query) = insert.source else {
                    return Err(ParserError::ParserError("INSERT needs a SELECT or VALUES query".into()));
                };
                let columns =
                    insert.columns.into_iter().filter_map(|n| n.0.last().and_then(|p| p.as_ident()).cloned()).collect();
                Ok(Statement::Insert(InsertDef { table, columns, query, span }))
            }
            _ => unreachable!("INSERT keyword parses as an INSERT statement"),
        };
    }
    let tok = p.peek_token();
    Err(ParserError::ParserError(format!(
        "unsupported statement starting with '{}': sluice runs CREATE TABLE, CREATE VIEW, INSERT INTO, EXECUTE STATEMENT SET and SET at Line: {}, Column: {}",
        tok.token, tok.span.start.line, tok.span.start.column
    )))
}

/// A `SET` key or value: a quoted string, or bare words and dots as older Flink clients allow.
fn parse_set_word(p: &mut Parser) -> Result<String, ParserError> {
    let tok = p.next_token();
    match tok.token {
        Token::SingleQuotedString(s) => Ok(s),
        Token::Word(w) => {
            let mut s = w.value;
            while p.consume_token(&Token::Period) {
                s.push('.');
                s.push_str(&p.parse_identifier()?.value);
            }
            Ok(s)
        }
        Token::Number(n, _) => Ok(n),
        _ => p.expected("a quoted string", tok),
    }
}

/// sqlparser puts the place into the message text (`... at Line: 3, Column: 7`); move it to `pos`.
fn parser_error(e: ParserError, p: &Parser) -> SqlError {
    let msg = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_string(),
    };
    if let Some(idx) = msg.rfind(" at Line: ") {
        let loc = &msg[idx + " at Line: ".len()..];
        let mut parts = loc.split(", Column: ");
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        let column = parts.next().and_then(|c| c.trim().parse().ok());
        if let (Some(line), Some(column)) = (line, column) {
            return SqlError::new(Some(Pos { line, column }), msg[..idx].to_string());
        }
    }
    SqlError::new(Pos::from_location(p.peek_token().span.start), msg)
}

/// Name of the pseudo-function that carries a window TVF's `PARTITION BY` columns to the planner.
pub const PARTITION_BY_MARKER: &str = "__PARTITION_BY";

/// Flink passes a table to a window TVF as `TABLE t`, optionally `TABLE t PARTITION BY k`, which
/// sqlparser does not parse inside a call. Inside `TABLE(fn(...))` this drops the `TABLE` keyword of the
/// argument and turns `PARTITION BY cols` into the argument `__PARTITION_BY(cols)`; spans are kept, so
/// errors still point into the user's text. The planner reads the call (see `crate::window`).
fn rewrite_window_tvf_tokens(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let sig: Vec<usize> = (0..tokens.len()).filter(|&i| significant(&tokens[i])).collect();
    let word = |i: usize, w: &str| matches!(&tokens[i].token, Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let is_word = |i: usize| matches!(&tokens[i].token, Token::Word(_));
    let has_call = sig.windows(2).any(|w| word(w[0], "TABLE") && tokens[w[1]].token == Token::LParen);
    if !has_call {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len() + 4);
    let mut depth = 0usize;
    let mut args_depth: Option<usize> = None;
    let mut partition_open = false;
    let mut skip = 0usize;
    for (k, &i) in sig.iter().enumerate() {
        let at = |d: usize| sig.get(k + d).copied();
        if skip > 0 {
            skip -= 1;
            continue;
        }
        let t = &tokens[i];
        let inside = args_depth == Some(depth);
        match &t.token {
            Token::Word(_) if word(i, "TABLE") && args_depth.is_none() => {
                let call = matches!((at(1), at(2), at(3)), (Some(a), Some(b), Some(c))
                    if tokens[a].token == Token::LParen && is_word(b) && tokens[c].token == Token::LParen);
                if call {
                    args_depth = Some(depth + 2);
                }
            }
            Token::Word(_) if inside && word(i, "TABLE") => {
                let prev = k.checked_sub(1).map(|p| &tokens[sig[p]].token);
                if matches!(prev, Some(Token::LParen | Token::Comma | Token::RArrow)) && at(1).is_some_and(is_word) {
                    continue;
                }
            }
            Token::Word(_) if inside && word(i, "PARTITION") && at(1).is_some_and(|b| word(b, "BY")) => {
                for tok in [Token::Comma, Token::make_word(PARTITION_BY_MARKER, None), Token::LParen] {
                    out.push(TokenWithSpan { token: tok, span: t.span });
                }
                out.push(TokenWithSpan { token: Token::Whitespace(Whitespace::Space), span: t.span });
                partition_open = true;
                skip = 1;
                continue;
            }
            Token::Comma if inside && partition_open => {
                out.push(TokenWithSpan { token: Token::RParen, span: t.span });
                partition_open = false;
            }
            Token::RParen if inside && partition_open => {
                out.push(TokenWithSpan { token: Token::RParen, span: t.span });
                partition_open = false;
            }
            _ => {}
        }
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth = depth.saturating_sub(1);
                if args_depth.is_some_and(|d| depth < d) {
                    args_depth = None;
                }
            }
            _ => {}
        }
        out.push(t.clone());
        // Keep whitespace after each kept token so that words stay apart.
        out.push(TokenWithSpan { token: Token::Whitespace(Whitespace::Space), span: t.span });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_statement_sets() {
        let sql = "SET 'parallelism.default' = '1';\n\
                   CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\n\
                   EXECUTE STATEMENT SET BEGIN\n INSERT INTO s SELECT a FROM t;\n INSERT INTO s SELECT a + 1 FROM t;\nEND;";
        let (stmts, errors) = parse_script(sql);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(stmts.len(), 3);
        assert!(matches!(&stmts[0], Statement::Set { key, value, .. } if key == "parallelism.default" && value == "1"));
        assert!(matches!(&stmts[2], Statement::StatementSet(v) if v.len() == 2));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let sql = "CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\n\nINSERT INTO s SELEC a FROM t;";
        let (_, errors) = parse_script(sql);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pos, Some(Pos { line: 3, column: 15 }));
    }
}
