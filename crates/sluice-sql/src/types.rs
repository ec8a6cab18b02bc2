//! Flink data types (`STRING`, `DECIMAL(p, s)`, `TIMESTAMP_LTZ(3)`, `ROW<a INT, b STRING>`, ...) parsed
//! from tokens and mapped to Arrow. sqlparser 0.62 has no type hook, so `CREATE TABLE` calls this.
//!
//! Timestamps: precision 0-3 map to milliseconds, 4-6 to microseconds, 7-9 to nanoseconds;
//! `TIMESTAMP_LTZ` and `WITH LOCAL TIME ZONE` carry the zone `UTC` (an instant).

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use std::sync::Arc;

/// The time zone stored on instants (`TIMESTAMP_LTZ`); rendering converts to the session zone.
pub const LTZ_ZONE: &str = "UTC";

#[derive(Debug, Clone, PartialEq)]
pub struct FlinkType {
    pub data_type: DataType,
    pub nullable: bool,
}

/// Parses one Flink type at the parser's position, including a trailing `NOT NULL` / `NULL`.
pub fn parse_type(parser: &mut Parser) -> Result<FlinkType, ParserError> {
    let mut state = TypeParser { pending_gt: 0 };
    let data_type = state.parse(parser)?;
    if state.pending_gt != 0 {
        return parser.expected("a type", parser.peek_token());
    }
    let nullable = parse_nullability(parser);
    Ok(FlinkType { data_type, nullable })
}

fn parse_nullability(parser: &mut Parser) -> bool {
    use datafusion::sql::sqlparser::keywords::Keyword;
    if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
        false
    } else {
        let _ = parser.parse_keyword(Keyword::NULL);
        true
    }
}

pub fn timestamp_unit(precision: u64) -> TimeUnit {
    match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

struct TypeParser {
    /// `>>` closes two nested types; the second `>` is owed to the outer one.
    pending_gt: usize,
}

impl TypeParser {
    fn parse(&mut self, p: &mut Parser) -> Result<DataType, ParserError> {
        let tok = p.next_token();
        let name = match &tok.token {
            Token::Word(w) => w.value.to_ascii_uppercase(),
            _ => return p.expected("a data type", tok),
        };
        let t = match name.as_str() {
            "STRING" | "TEXT" => DataType::Utf8,
            "VARCHAR" | "CHAR" | "CHARACTER" => {
                if matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("VARYING")) {
                    p.next_token();
                }
                self.optional_args(p, 1)?;
                DataType::Utf8
            }
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "TINYINT" => DataType::Int8,
            "SMALLINT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" => DataType::Int64,
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => {
                if matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("PRECISION")) {
                    p.next_token();
                }
                DataType::Float64
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let args = self.optional_args(p, 2)?;
                let precision = args.first().copied().unwrap_or(10);
                let scale = args.get(1).copied().unwrap_or(0);
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(ParserError::ParserError(format!(
                        "DECIMAL({precision}, {scale}) is out of range: precision must be 1..38 and scale at most the precision{}",
                        location_suffix(&tok)
                    )));
                }
                DataType::Decimal128(precision as u8, scale as i8)
            }
            "DATE" => DataType::Date32,
            "TIME" => {
                self.optional_args(p, 1)?;
                self.skip_time_zone_clause(p);
                DataType::Time32(TimeUnit::Millisecond)
            }
            "TIMESTAMP" => {
                let precision = self.optional_args(p, 1)?.first().copied().unwrap_or(6);
                check_time_precision(precision, &tok)?;
                let local = self.skip_time_zone_clause(p);
                DataType::Timestamp(timestamp_unit(precision), local.then(|| Arc::from(LTZ_ZONE)))
            }
            "TIMESTAMP_LTZ" => {
                let precision = self.optional_args(p, 1)?.first().copied().unwrap_or(6);
                check_time_precision(precision, &tok)?;
                DataType::Timestamp(timestamp_unit(precision), Some(Arc::from(LTZ_ZONE)))
            }
            "BYTES" => DataType::Binary,
            "BINARY" | "VARBINARY" => {
                self.optional_args(p, 1)?;
                DataType::Binary
            }
            "ARRAY" => {
                self.expect_lt(p)?;
                let inner = self.parse_nested(p)?;
                self.expect_gt(p)?;
                DataType::List(Arc::new(Field::new_list_field(inner, true)))
            }
            "MAP" => {
                self.expect_lt(p)?;
                let key = self.parse_nested(p)?;
                p.expect_token(&Token::Comma)?;
                let value = self.parse_nested(p)?;
                self.expect_gt(p)?;
                let entries = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)]);
                DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
            }
            "ROW" => {
                let close = if p.consume_token(&Token::Lt) {
                    Token::Gt
                } else if p.consume_token(&Token::LParen) {
                    Token::RParen
                } else {
                    return p.expected("'<' or '(' after ROW", p.peek_token());
                };
                let mut fields = Vec::new();
                loop {
                    let name = p.parse_identifier()?;
                    let t = self.parse_nested(p)?;
                    fields.push(Field::new(name.value, t, true));
                    // Optional field description string.
                    if let Token::SingleQuotedString(_) = p.peek_token().token {
                        p.next_token();
                    }
                    // A `>>` that closed a nested type also closes this ROW.
                    if self.pending_gt > 0 || !p.consume_token(&Token::Comma) {
                        break;
                    }
                }
                if close == Token::Gt {
                    self.expect_gt(p)?;
                } else {
                    p.expect_token(&Token::RParen)?;
                }
                DataType::Struct(Fields::from(fields))
            }
            other => {
                return Err(ParserError::ParserError(format!("unknown data type '{other}'{}", location_suffix(&tok))))
            }
        };
        Ok(t)
    }

    fn parse_nested(&mut self, p: &mut Parser) -> Result<DataType, ParserError> {
        let t = self.parse(p)?;
        if self.pending_gt == 0 {
            parse_nullability(p);
        }
        Ok(t)
    }

    /// `(n)` or `(p, s)` after a type name.
    fn optional_args(&mut self, p: &mut Parser, max: usize) -> Result<Vec<u64>, ParserError> {
        if !p.consume_token(&Token::LParen) {
            return Ok(vec![]);
        }
        let mut args = Vec::new();
        loop {
            let tok = p.next_token();
            match &tok.token {
                Token::Number(n, _) => args.push(
                    n.parse::<u64>()
                        .map_err(|_| ParserError::ParserError(format!("expected an integer, found {n}")))?,
                ),
                _ => return p.expected("an integer", tok),
            }
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen)?;
        if args.len() > max {
            return Err(ParserError::ParserError(format!("too many type arguments: expected at most {max}")));
        }
        Ok(args)
    }

    /// `WITH TIME ZONE`, `WITHOUT TIME ZONE`, `WITH LOCAL TIME ZONE`; true for the local form.
    fn skip_time_zone_clause(&mut self, p: &mut Parser) -> bool {
        use datafusion::sql::sqlparser::keywords::Keyword;
        if p.parse_keywords(&[Keyword::WITH, Keyword::LOCAL, Keyword::TIME, Keyword::ZONE]) {
            return true;
        }
        if p.parse_keywords(&[Keyword::WITHOUT, Keyword::TIME, Keyword::ZONE]) {
            return false;
        }
        false
    }

    fn expect_lt(&mut self, p: &mut Parser) -> Result<(), ParserError> {
        p.expect_token(&Token::Lt).map(|_| ())
    }

    fn expect_gt(&mut self, p: &mut Parser) -> Result<(), ParserError> {
        if self.pending_gt > 0 {
            self.pending_gt -= 1;
            return Ok(());
        }
        let tok = p.next_token();
        match tok.token {
            Token::Gt => Ok(()),
            Token::ShiftRight => {
                self.pending_gt += 1;
                Ok(())
            }
            _ => p.expected("'>'", tok),
        }
    }
}

fn check_time_precision(
    precision: u64,
    tok: &datafusion::sql::sqlparser::tokenizer::TokenWithSpan,
) -> Result<(), ParserError> {
    if precision > 9 {
        return Err(ParserError::ParserError(format!(
            "timestamp precision must be between 0 and 9, got {precision}{}",
            location_suffix(tok)
        )));
    }
    Ok(())
}

fn location_suffix(tok: &datafusion::sql::sqlparser::tokenizer::TokenWithSpan) -> String {
    format!(" at Line: {}, Column: {}", tok.span.start.line, tok.span.start.column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::FlinkDialect;

    fn parse(s: &str) -> FlinkType {
        let mut p = Parser::new(&FlinkDialect).try_with_sql(s).unwrap();
        parse_type(&mut p).unwrap()
    }

    #[test]
    fn flink_types_map_to_arrow() {
        assert_eq!(parse("STRING").data_type, DataType::Utf8);
        assert_eq!(parse("VARCHAR(20)").data_type, DataType::Utf8);
        assert_eq!(parse("DECIMAL(10, 2)").data_type, DataType::Decimal128(10, 2));
        assert_eq!(parse("DECIMAL").data_type, DataType::Decimal128(10, 0));
        assert_eq!(parse("TIMESTAMP(3)").data_type, DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(
            parse("TIMESTAMP(3) WITH LOCAL TIME ZONE").data_type,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(parse("TIMESTAMP_LTZ(3)").data_type, parse("TIMESTAMP(3) WITH LOCAL TIME ZONE").data_type);
        assert!(!parse("BIGINT NOT NULL").nullable);
    }

    #[test]
    fn nested_types_close_with_shift_right() {
        let t = parse("ARRAY<MAP<STRING, ARRAY<INT>>>").data_type;
        assert!(matches!(t, DataType::List(_)));
        let mut p = Parser::new(&FlinkDialect)
            .try_with_sql("ROW<device STRING, `os` ROW<name STRING, v INT>>, next INT")
            .unwrap();
        let t = parse_type(&mut p).unwrap().data_type;
        assert_eq!(p.next_token().token, Token::Comma, "the type ends at its closing '>>'");
        match t {
            DataType::Struct(f) => {
                assert_eq!(f[0].name(), "device");
                assert_eq!(f[1].name(), "os");
            }
            other => panic!("expected struct, got {other}"),
        }
    }

    #[test]
    fn unknown_type_is_an_error() {
        let mut p = Parser::new(&FlinkDialect).try_with_sql("STRNG").unwrap();
        let e = parse_type(&mut p).unwrap_err().to_string();
        assert!(e.contains("unknown data type 'STRNG'"), "{e}");
    }
}
