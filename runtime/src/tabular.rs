//! Tables in memory: decrypted CSV parsed into [`Table`]s, and the join of them into one
//! (what `job::join` runs), all in memory.
//!
//! - Keyed join (`SparkJoin`): each dataset becomes a table named after its `name` in an
//!   in-memory SQLite database (`temp_store=MEMORY`, nothing on disk), and the pipeline's
//!   `joining_query` runs there. The query is checked as DEPA checks it: a single statement,
//!   beginning with `SELECT` or `WITH`, and read-only by SQLite's own judgement
//!   (`sqlite3_stmt_readonly`).
//! - Union (`DirectoryJoin`): tables with the same columns (in any order) are stacked.
//!
//! Then `drop_columns` are removed. Values are numbers (SQLite `INTEGER`/`REAL`), text or
//! missing.

use std::collections::HashSet;

use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::pipeline::{Join, JoinedDataset};

/// A cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A number.
    Num(f64),
    /// Text.
    Text(String),
    /// Missing.
    Null,
}

impl Cell {
    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Num(x) => Some(*x),
            _ => None,
        }
    }

    /// A printable form (for identifiers and labels).
    pub fn to_text(&self) -> String {
        match self {
            Self::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", *x as i64),
            Self::Num(x) => x.to_string(),
            Self::Text(s) => s.clone(),
            Self::Null => String::new(),
        }
    }
}

/// An in-memory table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each `columns.len()` cells.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// A join error, naming the dataset, column or query at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// A CSV could not be parsed.
    #[error("dataset `{dataset}` file `{file}`: CSV line {line}: {reason}")]
    Csv {
        /// Dataset name.
        dataset: String,
        /// File inside the image.
        file: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A column named in the config is not in the table.
    #[error("{what}: column `{column}` is not in {table} (columns: {available})")]
    UnknownColumn {
        /// Which config field named it.
        what: String,
        /// The column.
        column: String,
        /// The table.
        table: String,
        /// The columns present.
        available: String,
    },
    /// The query is not a single read-only SELECT.
    #[error("joining_query refused: {0}")]
    QueryRefused(String),
    /// SQLite rejected or failed the query.
    #[error("joining_query: {0}")]
    Sql(String),
    /// Union inputs differ in shape.
    #[error("DirectoryJoin: dataset `{dataset}` has columns {found}, expected {expected}")]
    Shape {
        /// The dataset.
        dataset: String,
        /// Its columns.
        found: String,
        /// The first dataset's columns.
        expected: String,
    },
    /// The join produced no rows.
    #[error("the join produced no rows")]
    Empty,
}

/// Parses CSV bytes (header row first) into a table. Numbers become [`Cell::Num`], empty
/// fields [`Cell::Null`], anything else [`Cell::Text`].
///
/// # Errors
/// [`JoinError::Csv`] with the line.
pub fn parse_csv(dataset: &str, file: &str, bytes: &[u8]) -> Result<Table, JoinError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let err = |line: u64, reason: String| JoinError::Csv {
        dataset: dataset.into(),
        file: file.into(),
        line,
        reason,
    };
    let columns: Vec<String> = rdr
        .headers()
        .map_err(|e| err(1, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut seen = HashSet::new();
    for c in &columns {
        if c.is_empty() || !seen.insert(c) {
            return Err(err(1, format!("empty or duplicate column name `{c}`")));
        }
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() != columns.len() {
            return Err(err(
                line,
                format!("{} fields, header has {}", rec.len(), columns.len()),
            ));
        }
        rows.push(
            rec.iter()
                .map(|f| {
                    let f = f.trim();
                    if f.is_empty() {
                        Cell::Null
                    } else if let Ok(x) = f.parse::<f64>() {
                        if x.is_finite() {
                            Cell::Num(x)
                        } else {
                            Cell::Text(f.to_string())
                        }
                    } else {
                        Cell::Text(f.to_string())
                    }
                })
                .collect(),
        );
    }
    Ok(Table { columns, rows })
}

/// Keeps only `select` columns, in that order.
///
/// # Errors
/// [`JoinError::UnknownColumn`].
pub fn select_columns(t: &Table, select: &[String], table: &str) -> Result<Table, JoinError> {
    let idx = select
        .iter()
        .map(|c| {
            t.column(c).ok_or_else(|| JoinError::UnknownColumn {
                what: "select_variables".into(),
                column: c.clone(),
                table: table.into(),
                available: t.columns.join(", "),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table {
        columns: select.to_vec(),
        rows: t
            .rows
            .iter()
            .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
            .collect(),
    })
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Strips leading whitespace and SQL comments.
fn strip_leading_comments(mut q: &str) -> &str {
    loop {
        q = q.trim_start();
        if let Some(rest) = q.strip_prefix("--") {
            q = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = q.strip_prefix("/*") {
            q = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return q;
        }
    }
}

/// Runs a keyed join: `tables` are `(name, table)` pairs.
///
/// # Errors
/// [`JoinError::QueryRefused`] for anything but one read-only SELECT; [`JoinError::Sql`].
pub fn keyed_join(tables: &[(String, Table)], query: &str) -> Result<Table, JoinError> {
    let sql = |e: rusqlite::Error| JoinError::Sql(e.to_string());
    let head = strip_leading_comments(query).to_ascii_uppercase();
    if !(head.starts_with("SELECT") || head.starts_with("WITH")) {
        return Err(JoinError::QueryRefused(
            "it must be a single SELECT statement".into(),
        ));
    }
    let mut conn = Connection::open_in_memory().map_err(sql)?;
    conn.execute_batch("PRAGMA temp_store=MEMORY;")
        .map_err(sql)?;
    for (name, t) in tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let numeric = t.rows.iter().all(|r| !matches!(r[i], Cell::Text(_)));
                format!(
                    "{} {}",
                    quote_ident(c),
                    if numeric { "REAL" } else { "TEXT" }
                )
            })
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE {} ({});",
            quote_ident(name),
            cols.join(", ")
        ))
        .map_err(sql)?;
        let tx = conn.transaction().map_err(sql)?;
        {
            let placeholders = vec!["?"; t.columns.len()].join(", ");
            let mut st = tx
                .prepare(&format!(
                    "INSERT INTO {} VALUES ({placeholders})",
                    quote_ident(name)
                ))
                .map_err(sql)?;
            for r in &t.rows {
                let vals: Vec<SqlValue> = r
                    .iter()
                    .map(|c| match c {
                        Cell::Num(x) => SqlValue::Real(*x),
                        Cell::Text(s) => SqlValue::Text(s.clone()),
                        Cell::Null => SqlValue::Null,
                    })
                    .collect();
                st.execute(rusqlite::params_from_iter(vals)).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
    }
    // SQLite prepares only the first statement of a string and ignores the rest: count them
    // (preparing does not run anything) and refuse more than one.
    let mut batch = rusqlite::Batch::new(&conn, query);
    let mut statements = 0;
    while batch.next().map_err(sql)?.is_some() {
        statements += 1;
    }
    if statements != 1 {
        return Err(JoinError::QueryRefused(format!(
            "{statements} statements; exactly one SELECT is allowed"
        )));
    }
    let mut st = conn.prepare(query).map_err(sql)?;
    if !st.readonly() {
        return Err(JoinError::QueryRefused(
            "the statement is not read-only".into(),
        ));
    }
    let mut columns: Vec<String> = Vec::new();
    for name in st.column_names() {
        // A `SELECT *` over a join repeats the key column; later copies get a suffix.
        let mut n = name.to_string();
        let mut k = 1;
        while columns.contains(&n) {
            n = format!("{name}:{k}");
            k += 1;
        }
        columns.push(n);
    }
    let ncol = columns.len();
    let mut rows = Vec::new();
    let mut q = st.query([]).map_err(sql)?;
    while let Some(r) = q.next().map_err(sql)? {
        let mut row = Vec::with_capacity(ncol);
        for i in 0..ncol {
            row.push(match r.get_ref(i).map_err(sql)? {
                ValueRef::Integer(x) => Cell::Num(x as f64),
                ValueRef::Real(x) => Cell::Num(x),
                ValueRef::Text(s) => Cell::Text(String::from_utf8_lossy(s).into_owned()),
                ValueRef::Null => Cell::Null,
                ValueRef::Blob(_) => Cell::Null,
            });
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(JoinError::Empty);
    }
    Ok(Table { columns, rows })
}

/// Stacks like-shaped tables.
///
/// # Errors
/// [`JoinError::Shape`] naming the dataset whose columns differ.
pub fn union(tables: &[(String, Table)]) -> Result<Table, JoinError> {
    let Some((_, first)) = tables.first() else {
        return Err(JoinError::Empty);
    };
    let mut expected: Vec<&String> = first.columns.iter().collect();
    expected.sort();
    let mut out = Table {
        columns: first.columns.clone(),
        rows: Vec::new(),
    };
    for (name, t) in tables {
        let mut found: Vec<&String> = t.columns.iter().collect();
        found.sort();
        if found != expected {
            return Err(JoinError::Shape {
                dataset: name.clone(),
                found: t.columns.join(", "),
                expected: first.columns.join(", "),
            });
        }
        let idx: Vec<usize> = out
            .columns
            .iter()
            .map(|c| {
                t.column(c)
                    .unwrap_or_else(|| unreachable!("same column set"))
            })
            .collect();
        out.rows.extend(
            t.rows
                .iter()
                .map(|r| idx.iter().map(|&i| r[i].clone()).collect::<Vec<_>>()),
        );
    }
    if out.rows.is_empty() {
        return Err(JoinError::Empty);
    }
    Ok(out)
}

/// Applies `drop_columns`.
///
/// # Errors
/// [`JoinError::UnknownColumn`] for a column that is not in the joined table.
pub fn drop_columns(t: Table, jd: &JoinedDataset) -> Result<Table, JoinError> {
    let mut keep: Vec<usize> = (0..t.columns.len()).collect();
    for c in &jd.drop_columns {
        // As Spark's `drop` (DEPA's join): a column that is not there is nothing to drop.
        match t.column(c) {
            Some(i) => keep.retain(|&k| k != i),
            None => {
                tracing::info!(column = %c, "drop_columns: not in the joined table, nothing to drop")
            }
        }
    }
    Ok(Table {
        columns: keep.iter().map(|&i| t.columns[i].clone()).collect(),
        rows: t
            .rows
            .iter()
            .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
            .collect(),
    })
}

/// Joins decrypted tables as the join step says, then drops `drop_columns`.
///
/// # Errors
/// [`JoinError`].
pub fn run(join: &Join, tables: Vec<(String, Table)>) -> Result<Table, JoinError> {
    let keyed = matches!(join, Join::Keyed(_));
    let jd = join.config().joined_dataset.clone().unwrap_or_default();
    let joined = if keyed {
        keyed_join(&tables, jd.joining_query.as_deref().unwrap_or(""))?
    } else {
        union(&tables)?
    };
    if let Some(k) = &jd.joining_key
        && keyed
        && joined.column(k).is_none()
    {
        return Err(JoinError::UnknownColumn {
            what: "joining_key".into(),
            column: k.clone(),
            table: "the joined table".into(),
            available: joined.columns.join(", "),
        });
    }
    drop_columns(joined, &jd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(csv: &str) -> Table {
        parse_csv("d", "f.csv", csv.as_bytes()).unwrap()
    }

    #[test]
    fn keyed_join_runs_sql_inner_join() {
        let a = t("id,x,y\nA,1,0\nB,2,1\nC,3,0\n");
        let b = t("id,z\nB,20\nC,30\nD,40\n");
        let j = keyed_join(
            &[("a".into(), a), ("b".into(), b)],
            "SELECT * FROM a JOIN b USING (id) ORDER BY id",
        )
        .unwrap();
        assert_eq!(j.columns, vec!["id", "x", "y", "z"]);
        assert_eq!(j.rows.len(), 2);
        assert_eq!(j.rows[0][0], Cell::Text("B".into()));
        assert_eq!(j.rows[1][3], Cell::Num(30.0));
    }

    #[test]
    fn writes_and_multiple_statements_are_refused() {
        let a = t("id,x\nA,1\n");
        let tabs = [("a".to_string(), a)];
        for q in [
            "DELETE FROM a",
            "SELECT * FROM a; DROP TABLE a",
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "  -- comment\n INSERT INTO a VALUES ('B', 2)",
        ] {
            assert!(
                matches!(keyed_join(&tabs, q), Err(JoinError::QueryRefused(_))),
                "{q}"
            );
        }
    }

    #[test]
    fn union_reorders_columns_and_rejects_other_shapes() {
        let a = t("id,x\nA,1\n");
        let b = t("x,id\n2,B\n");
        let u = union(&[("a".into(), a.clone()), ("b".into(), b)]).unwrap();
        assert_eq!(u.rows[1], vec![Cell::Text("B".into()), Cell::Num(2.0)]);
        let c = t("id,y\nC,3\n");
        assert!(matches!(
            union(&[("a".into(), a), ("c".into(), c)]),
            Err(JoinError::Shape { .. })
        ));
    }

    #[test]
    fn ragged_csv_is_an_error_with_its_line() {
        let e = parse_csv("d", "f.csv", b"a,b\n1,2\n3\n").unwrap_err();
        assert!(e.to_string().contains("line"), "{e}");
    }
}
