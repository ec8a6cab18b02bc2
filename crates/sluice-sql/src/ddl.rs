//! `CREATE [TEMPORARY] TABLE` in Flink's form, parsed with the public sqlparser `Parser` API:
//! physical, computed (`c AS expr`) and metadata (`c T METADATA [FROM 'k'] [VIRTUAL]`) columns,
//! `WATERMARK FOR c AS expr`, `PRIMARY KEY (...) NOT ENFORCED` and `WITH ('k' = 'v', ...)`.

use crate::types::{parse_type, FlinkType};
use datafusion::sql::sqlparser::ast::{Expr, Ident, ObjectName};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Span, Token};

#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: ObjectName,
    pub temporary: bool,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkDef>,
    pub primary_key: Vec<Ident>,
    pub options: Vec<TableOption>,
    /// Span of the `WITH` keyword, where "missing option" errors point.
    pub with_span: Span,
}

#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: Ident,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone)]
pub enum ColumnKind {
    Physical(FlinkType),
    Computed(Box<Expr>),
    Metadata { ty: FlinkType, key: Option<String>, is_virtual: bool },
}

#[derive(Debug, Clone)]
pub struct WatermarkDef {
    pub column: Ident,
    pub expr: Expr,
}

#[derive(Debug, Clone)]
pub struct TableOption {
    pub key: String,
    pub value: String,
    pub key_span: Span,
    pub value_span: Span,
}

fn is_word(p: &Parser, n: usize, word: &str) -> bool {
    matches!(&p.peek_nth_token(n).token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

fn expect_word(p: &mut Parser, word: &str) -> Result<(), ParserError> {
    if is_word(p, 0, word) {
        p.next_token();
        Ok(())
    } else {
        p.expected(word, p.peek_token())
    }
}

/// Parses after `CREATE [TEMPORARY] TABLE` has been consumed.
pub fn parse_create_table_body(p: &mut Parser, temporary: bool) -> Result<TableDef, ParserError> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = p.parse_object_name(false)?;
    p.expect_token(&Token::LParen)?;
    let mut columns = Vec::new();
    let mut watermark = None;
    let mut primary_key = Vec::new();
    loop {
        if is_word(p, 0, "WATERMARK") {
            p.next_token();
            p.expect_keyword(Keyword::FOR)?;
            let column = p.parse_identifier()?;
            p.expect_keyword(Keyword::AS)?;
            let expr = p.parse_expr()?;
            watermark = Some(WatermarkDef { column, expr });
        } else if is_word(p, 0, "PRIMARY") || is_word(p, 0, "CONSTRAINT") {
            if p.parse_keyword(Keyword::CONSTRAINT) {
                p.parse_identifier()?;
            }
            p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])?;
            p.expect_token(&Token::LParen)?;
            primary_key = p.parse_comma_separated(|p| p.parse_identifier())?;
            p.expect_token(&Token::RParen)?;
            parse_not_enforced(p)?;
        } else {
            let name = p.parse_identifier()?;
            let kind = if p.parse_keyword(Keyword::AS) {
                ColumnKind::Computed(Box::new(p.parse_expr()?))
            } else {
                let ty = parse_type(p)?;
                if is_word(p, 0, "METADATA") {
                    p.next_token();
                    let key = if p.parse_keyword(Keyword::FROM) { Some(p.parse_literal_string()?) } else { None };
                    let is_virtual = if is_word(p, 0, "VIRTUAL") {
                        p.next_token();
                        true
                    } else {
                        false
                    };
                    ColumnKind::Metadata { ty, key, is_virtual }
                } else {
                    if p.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
                        parse_not_enforced(p)?;
                        primary_key = vec![name.clone()];
                    }
                    ColumnKind::Physical(ty)
                }
            };
            if p.parse_keyword(Keyword::COMMENT) {
                p.parse_literal_string()?;
            }
            columns.push(ColumnDef { name, kind });
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
        // Trailing comma before ')'.
        if p.peek_token().token == Token::RParen {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    if p.parse_keyword(Keyword::COMMENT) {
        p.parse_literal_string()?;
    }
    if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        p.expect_token(&Token::LParen)?;
        p.parse_comma_separated(|p| p.parse_identifier())?;
        p.expect_token(&Token::RParen)?;
    }
    let with_tok = p.peek_token();
    let options = if p.parse_keyword(Keyword::WITH) { parse_with_options(p)? } else { Vec::new() };
    Ok(TableDef { name, temporary, if_not_exists, columns, watermark, primary_key, options, with_span: with_tok.span })
}

fn parse_not_enforced(p: &mut Parser) -> Result<(), ParserError> {
    p.expect_keyword(Keyword::NOT)?;
    expect_word(p, "ENFORCED")
}

/// `('k' = 'v', ...)`, both sides string literals as in Flink.
pub fn parse_with_options(p: &mut Parser) -> Result<Vec<TableOption>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let mut options = Vec::new();
    if p.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let key_tok = p.peek_token();
        let key = p.parse_literal_string()?;
        p.expect_token(&Token::Eq)?;
        let value_tok = p.peek_token();
        let value = p.parse_literal_string()?;
        options.push(TableOption { key, value, key_span: key_tok.span, value_span: value_tok.span });
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    Ok(options)
}
