//! The read-only guard: which SQL `flywheel query` (and the viewer's SQL) may run.
//!
//! A query reads the tables it is given and writes nothing. The guard is structural: the text is
//! parsed once with DataFusion's parser and the statement is accepted only if it is a query
//! (`SELECT`, `WITH`, `VALUES`, set operations) or an `EXPLAIN` of one, and no `FROM` item calls a
//! table function that is not known to read nothing. The statement that passed is the one that
//! is planned ([`crate::run`]), so the guard and the planner never see two different parses; the
//! planned query is checked again with DataFusion's own [`SQLOptions`] (no DDL, DML or
//! statements) as a second line.
//!
//! Refused, with [`QueryError::Refused`]: `COPY`, `CREATE` (tables, external tables, views,
//! functions), `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `DROP`, `SET`, `RESET`, `SELECT … INTO`,
//! and any table function outside [`PURE_TABLE_FUNCTIONS`]. The refusal names the statement
//! kind or the function, never anything read from a file.

use crate::QueryError;
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Query, Select, Statement, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use std::ops::ControlFlow;

/// Table functions a query may call: DataFusion's row generators, which read no file. A table
/// function registered later (a file reader, a metadata reader) is refused until it is listed
/// here.
pub const PURE_TABLE_FUNCTIONS: &[&str] = &["generate_series", "range"];

/// Checks that `sql` is one read-only statement: a query, or `EXPLAIN` of a query, reading no
/// file through a table function. The web viewer's SQL goes through the same check.
pub fn check_read_only(sql: &str) -> Result<(), QueryError> {
    read_only_statement(sql).map(|_| ())
}

/// The planner's second line: DataFusion refuses DDL, DML (`COPY` included) and statements
/// (`SET`, transactions) in the plan.
pub(crate) fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Parses `sql` (DataFusion's parser, the generic dialect the session uses) and returns its one
/// statement if it is read-only.
pub(crate) fn read_only_statement(sql: &str) -> Result<DfStatement, QueryError> {
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&GenericDialect {})
        .build()?
        .parse_statements()?;
    for s in &statements {
        check_statement(s)?;
    }
    match (statements.pop_front(), statements.len()) {
        (Some(s), 0) => Ok(s),
        (None, _) => Err(QueryError::Statements(0)),
        (Some(_), more) => Err(QueryError::Statements(more + 1)),
    }
}

fn refused(what: impl Into<String>) -> QueryError {
    QueryError::Refused(what.into())
}

fn check_statement(s: &DfStatement) -> Result<(), QueryError> {
    match s {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => check_query(q),
            other => Err(refused(statement_kind(other))),
        },
        DfStatement::Explain(e) => check_statement(&e.statement),
        DfStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => Err(refused("COPY")),
        DfStatement::Reset(_) => Err(refused("RESET")),
    }
}

/// The statement's leading keyword (`INSERT`, `DROP`, `SET`…): what the user wrote, without
/// echoing the rest.
fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    let word: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
        .collect();
    if word.is_empty() {
        "this statement".to_string()
    } else {
        word.to_ascii_uppercase()
    }
}

fn check_query(q: &Query) -> Result<(), QueryError> {
    match q.visit(&mut ReadOnly) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

/// Walks a query: nested statements (`WITH … INSERT`), `SELECT … INTO` and table functions.
struct ReadOnly;

impl Visitor for ReadOnly {
    type Break = QueryError;

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<QueryError> {
        match s {
            Statement::Query(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(refused(statement_kind(other))),
        }
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<QueryError> {
        if select.into.is_some() {
            return ControlFlow::Break(refused("SELECT … INTO"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<QueryError> {
        match factor {
            TableFactor::Table { args: None, .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::Pivot { .. }
            | TableFactor::Unpivot { .. } => ControlFlow::Continue(()),
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                let called = name
                    .0
                    .last()
                    .map(|part| part.to_string())
                    .unwrap_or_default();
                let bare = called.trim_matches('"').to_ascii_lowercase();
                if name.0.len() == 1 && PURE_TABLE_FUNCTIONS.contains(&bare.as_str()) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(refused(format!("table function {name}")))
                }
            }
            TableFactor::Function { name, .. } => {
                ControlFlow::Break(refused(format!("table function {name}")))
            }
            other => {
                let text = other.to_string();
                let head: String = text
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(40)
                    .collect();
                ControlFlow::Break(refused(format!(
                    "FROM item {}",
                    if head.is_empty() {
                        "of this kind"
                    } else {
                        &head
                    }
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sql: &str) -> String {
        match check_read_only(sql) {
            Err(QueryError::Refused(what)) => what,
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "select a, count(*) from t group by a",
            "WITH x AS (SELECT * FROM t) SELECT * FROM x JOIN u USING (id)",
            "SELECT * FROM (SELECT 1) AS s UNION ALL SELECT 2",
            "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
            "EXPLAIN SELECT * FROM t",
            "EXPLAIN ANALYZE SELECT count(*) FROM t",
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM range(10)",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM unnest([1, 2])",
            "VALUES (1), (2)",
        ] {
            check_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn writes_and_settings_are_refused_by_kind() {
        for (sql, kind) in [
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("COPY t TO '/tmp/x.parquet' STORED AS PARQUET", "COPY"),
            (
                "CREATE EXTERNAL TABLE p (a TEXT) STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("CREATE TABLE x AS SELECT 1", "CREATE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE"),
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("DELETE FROM t", "DELETE"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DROP TABLE t", "DROP"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("RESET datafusion.execution.batch_size", "RESET"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("EXPLAIN INSERT INTO t VALUES (1)", "INSERT"),
            ("SELECT 1 INTO x", "SELECT … INTO"),
            ("SHOW TABLES", "SHOW"),
        ] {
            assert_eq!(refusal(sql), kind, "{sql}");
        }
    }

    #[test]
    fn a_write_hidden_behind_a_query_is_refused() {
        // Every statement is checked, not only the first.
        assert_eq!(refusal("SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'"), "COPY");
        assert!(matches!(
            check_read_only("SELECT 1; SELECT 2"),
            Err(QueryError::Statements(2))
        ));
        assert!(matches!(
            check_read_only(""),
            Err(QueryError::Statements(0))
        ));
        // A write inside a query's body.
        assert_eq!(
            refusal("WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x"),
            "INSERT"
        );
    }

    #[test]
    fn table_functions_outside_the_pure_list_are_refused() {
        for (sql, what) in [
            (
                "SELECT * FROM read_parquet('/etc/passwd')",
                "table function read_parquet",
            ),
            (
                "SELECT * FROM t JOIN read_csv('/etc/passwd') ON true",
                "table function read_csv",
            ),
            (
                "SELECT * FROM parquet_metadata('/data/t/_data/a.parquet')",
                "table function parquet_metadata",
            ),
            (
                "WITH x AS (SELECT * FROM read_json('/etc/hosts')) SELECT * FROM x",
                "table function read_json",
            ),
            (
                "SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))",
                "table function read_csv",
            ),
            (
                "SELECT * FROM other.generate_series(1, 2)",
                "table function other.generate_series",
            ),
        ] {
            assert_eq!(refusal(sql), what, "{sql}");
        }
    }
}
