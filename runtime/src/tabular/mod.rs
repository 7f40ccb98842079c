//! Tables in memory as Apache Arrow record batches: decrypted CSV and parquet files read into
//! [`Table`]s ([`read`]), and the join of them into one (what `job::join` runs), all in memory.
//!
//! - Keyed join (`SparkJoin`): the pipeline's `joining_query` on Apache DataFusion ([`sql`]),
//!   each dataset a memory table named after its `name`; one read-only query only, no spill to
//!   disk.
//! - Union (`DirectoryJoin`): tables with the same columns (in any order) are stacked.
//!
//! Before either, the datasets are checked against each other: a column that several datasets
//! have (the joining key above all) must hold the same kind of value (numbers or text) in
//! each, and the `joining_key` must be a column of every dataset. Then `drop_columns` are
//! removed.

pub mod read;
pub mod sql;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};

use crate::pipeline::{Join, JoinedDataset};

/// An in-memory table: an Arrow schema and its record batches (each with that schema).
#[derive(Debug, Clone)]
pub struct Table {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows, in batches of at most [`read::BATCH_ROWS`].
    pub batches: Vec<RecordBatch>,
}

impl Table {
    /// A table of `batches`, each with `schema`.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Self { schema, batches }
    }

    /// Column names, in order.
    pub fn columns(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.schema.index_of(name).ok()
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Column `i` of each batch, in order.
    pub fn arrays(&self, i: usize) -> impl Iterator<Item = &ArrayRef> {
        self.batches.iter().map(move |b| b.column(i))
    }

    /// The Arrow memory the batches hold, in bytes.
    pub fn memory_size(&self) -> usize {
        self.batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }

    /// Keeps the columns `idx`, in that order.
    fn project(self, idx: &[usize]) -> Result<Self, JoinError> {
        let schema = Arc::new(
            self.schema
                .project(idx)
                .map_err(|e| JoinError::Sql(e.to_string()))?,
        );
        let batches = self
            .batches
            .iter()
            .map(|b| b.project(idx))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| JoinError::Sql(e.to_string()))?;
        Ok(Self::new(schema, batches))
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
        /// 1-based line (0 when unknown).
        line: u64,
        /// What is wrong (never a value of the file).
        reason: String,
    },
    /// A parquet file could not be read.
    #[error("dataset `{dataset}` file `{file}`: not a readable parquet file: {reason}")]
    Parquet {
        /// Dataset name.
        dataset: String,
        /// File inside the image.
        file: String,
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
    /// A column holds numbers in one dataset and text in another.
    #[error(
        "column `{column}` holds {first_kind} in dataset `{first}` but {second_kind} in dataset `{second}`: a column shared by datasets must have one type"
    )]
    TypeMismatch {
        /// The column.
        column: String,
        /// The first dataset that has it.
        first: String,
        /// Its type there.
        first_kind: String,
        /// The dataset that differs.
        second: String,
        /// Its type there.
        second_kind: String,
    },
    /// The query is not a single read-only SELECT.
    #[error("joining_query refused: {0}")]
    QueryRefused(String),
    /// DataFusion rejected or failed the query.
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

/// Keeps only `select` columns, in that order.
///
/// # Errors
/// [`JoinError::UnknownColumn`].
pub fn select_columns(t: Table, select: &[String], table: &str) -> Result<Table, JoinError> {
    let idx = select
        .iter()
        .map(|c| {
            t.column(c).ok_or_else(|| JoinError::UnknownColumn {
                what: "select_variables".into(),
                column: c.clone(),
                table: table.into(),
                available: t.columns().join(", "),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    t.project(&idx)
}

/// Checks the datasets against each other before a join: every column two datasets share holds
/// numbers in both or text in both, and `key` (the `joining_key`) is a column of each.
///
/// # Errors
/// [`JoinError::TypeMismatch`], [`JoinError::UnknownColumn`] naming the dataset without the key.
pub fn check_shared_columns(
    tables: &[(String, Table)],
    key: Option<&str>,
) -> Result<(), JoinError> {
    if let Some(k) = key {
        for (name, t) in tables {
            if t.column(k).is_none() {
                return Err(JoinError::UnknownColumn {
                    what: "joined_dataset.joining_key".into(),
                    column: k.into(),
                    table: format!("dataset `{name}`"),
                    available: t.columns().join(", "),
                });
            }
        }
    }
    let kind = |t: &DataType| (read::is_numeric(t), read::is_text(t));
    for (i, (a, ta)) in tables.iter().enumerate() {
        for (b, tb) in &tables[i + 1..] {
            for f in ta.schema.fields() {
                let Ok(g) = tb.schema.field_with_name(f.name()) else {
                    continue;
                };
                let (x, y) = (f.data_type(), g.data_type());
                // A column empty in one file (type Null) fits anything.
                if x == &DataType::Null || y == &DataType::Null || kind(x) == kind(y) {
                    continue;
                }
                return Err(JoinError::TypeMismatch {
                    column: f.name().clone(),
                    first: a.clone(),
                    first_kind: read::kind_name(x),
                    second: b.clone(),
                    second_kind: read::kind_name(y),
                });
            }
        }
    }
    Ok(())
}

/// Stacks like-shaped tables (columns in the first table's order; a numeric column whose type
/// differs between tables, e.g. `Int64` and `Float64`, becomes `Float64`).
///
/// # Errors
/// [`JoinError::Shape`] naming the dataset whose columns differ; [`JoinError::TypeMismatch`].
pub fn union(tables: Vec<(String, Table)>) -> Result<Table, JoinError> {
    let Some((_, first)) = tables.first() else {
        return Err(JoinError::Empty);
    };
    check_shared_columns(&tables, None)?;
    let fields: Vec<arrow::datatypes::Field> = first
        .schema
        .fields()
        .iter()
        .map(|f| {
            let differs = tables.iter().any(|(_, t)| {
                t.schema
                    .field_with_name(f.name())
                    .is_ok_and(|g| g.data_type() != f.data_type())
            });
            let dt = if differs && read::is_numeric(f.data_type()) {
                DataType::Float64
            } else {
                f.data_type().clone()
            };
            arrow::datatypes::Field::new(f.name(), dt, true)
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut expected = first.columns();
    expected.sort();
    let mut batches = Vec::new();
    for (name, t) in &tables {
        let mut found = t.columns();
        found.sort();
        if found != expected {
            return Err(JoinError::Shape {
                dataset: name.clone(),
                found: t.columns().join(", "),
                expected: first.columns().join(", "),
            });
        }
        for b in &t.batches {
            let cols = schema
                .fields()
                .iter()
                .map(|f| {
                    let c = b
                        .column_by_name(f.name())
                        .unwrap_or_else(|| unreachable!("same column set, checked above"));
                    if c.data_type() == f.data_type() {
                        Ok(Arc::clone(c))
                    } else {
                        cast(c.as_ref(), f.data_type())
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| JoinError::Sql(format!("DirectoryJoin: dataset `{name}`: {e}")))?;
            let b = RecordBatch::try_new(Arc::clone(&schema), cols)
                .map_err(|e| JoinError::Sql(format!("DirectoryJoin: dataset `{name}`: {e}")))?;
            batches.push(b);
        }
    }
    let out = Table::new(schema, batches);
    if out.num_rows() == 0 {
        return Err(JoinError::Empty);
    }
    Ok(out)
}

/// Applies `drop_columns`.
///
/// # Errors
/// None in practice (the projection keeps existing columns); typed for the projection.
pub fn drop_columns(t: Table, jd: &JoinedDataset) -> Result<Table, JoinError> {
    let mut keep: Vec<usize> = (0..t.schema.fields().len()).collect();
    for c in &jd.drop_columns {
        // As Spark's `drop` (DEPA's join): a column that is not there is nothing to drop.
        match t.column(c) {
            Some(i) => keep.retain(|&k| k != i),
            None => {
                tracing::info!(column = %c, "drop_columns: not in the joined table, nothing to drop")
            }
        }
    }
    if keep.len() == t.schema.fields().len() {
        return Ok(t);
    }
    t.project(&keep)
}

/// Joins decrypted tables as the join step says, then drops `drop_columns`.
///
/// # Errors
/// [`JoinError`].
pub fn run(join: &Join, tables: Vec<(String, Table)>) -> Result<Table, JoinError> {
    let keyed = matches!(join, Join::Keyed(_));
    let jd = join.config().joined_dataset.clone().unwrap_or_default();
    let joined = if keyed {
        check_shared_columns(&tables, jd.joining_key.as_deref())?;
        sql::keyed_join(tables, jd.joining_query.as_deref().unwrap_or(""))?
    } else {
        union(tables)?
    };
    if let Some(k) = &jd.joining_key
        && keyed
        && joined.column(k).is_none()
    {
        return Err(JoinError::UnknownColumn {
            what: "joining_key".into(),
            column: k.clone(),
            table: "the joined table".into(),
            available: joined.columns().join(", "),
        });
    }
    drop_columns(joined, &jd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;

    fn t(csv: &str) -> Table {
        read::read("d", "f.csv", csv.as_bytes(), &["id".to_string()]).unwrap()
    }

    fn text(t: &Table, col: &str, row: usize) -> String {
        let i = t.column(col).unwrap();
        let a =
            arrow::compute::concat(&t.arrays(i).map(|a| a.as_ref()).collect::<Vec<_>>()).unwrap();
        let s = cast(&a, &DataType::Utf8).unwrap();
        s.as_string::<i32>().value(row).to_string()
    }

    #[test]
    fn keyed_join_runs_sql_inner_join() {
        let a = t("id,x,y\nA,1,0\nB,2,1\nC,3,0\n");
        let b = t("id,z\nB,20.5\nC,30\nD,40\n");
        let j = sql::keyed_join(
            vec![("a".into(), a), ("b".into(), b)],
            "SELECT * FROM a JOIN b USING (id) ORDER BY id",
        )
        .unwrap();
        assert_eq!(j.columns(), vec!["id", "x", "y", "z"]);
        assert_eq!(j.num_rows(), 2);
        assert_eq!(text(&j, "id", 0), "B");
        let z = j.batches[0].column(3).as_primitive::<Float64Type>();
        assert_eq!(z.value(1), 30.0);
    }

    #[test]
    fn multi_way_join_with_aliases_and_on_keeps_every_key_copy() {
        let a = t("id,x\nA,1\nB,2\n");
        let b = t("id,y\nB,20\nA,10\n");
        let c = t("id,Z\nA,7\n");
        let j = sql::keyed_join(
            vec![("ta".into(), a), ("tb".into(), b), ("tc".into(), c)],
            "SELECT * FROM ta AS p JOIN tb AS q ON p.id = q.id JOIN tc AS r ON q.id = r.id",
        )
        .unwrap();
        assert_eq!(j.columns(), vec!["id", "x", "id:1", "y", "id:2", "Z"]);
        assert_eq!(j.num_rows(), 1);
        assert_eq!(text(&j, "y", 0), "10");
    }

    #[test]
    fn a_dataset_the_query_reads_twice_is_read_twice() {
        // A self-join (and a subquery over the same table): each dataset is handed to the plan
        // once, except these, which stay memory tables.
        let a = t("id,x\nA,1\nB,2\nC,3\n");
        let b = t("id,y\nA,10\nC,30\n");
        let j = sql::keyed_join(
            vec![("a".into(), a), ("b".into(), b)],
            "SELECT p.id, p.x, q.x AS x2, b.y FROM a AS p JOIN a AS q ON p.id = q.id \
             JOIN b ON b.id = p.id WHERE p.x < (SELECT max(x) FROM a) ORDER BY p.id",
        )
        .unwrap();
        assert_eq!(j.columns(), vec!["id", "x", "x2", "y"]);
        assert_eq!(j.num_rows(), 1);
        assert_eq!(text(&j, "id", 0), "A");
        assert_eq!(text(&j, "x2", 0), "1");
    }

    #[test]
    fn writes_and_multiple_statements_are_refused() {
        let tabs = || vec![("a".to_string(), t("id,x\nA,1\n"))];
        for q in [
            "DELETE FROM a",
            "SELECT * FROM a; DROP TABLE a",
            "CREATE TABLE b AS SELECT * FROM a",
            "COPY a TO '/tmp/x.csv'",
            "  -- comment\n INSERT INTO a VALUES ('B', 2)",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let r = sql::keyed_join(tabs(), q);
            assert!(matches!(r, Err(JoinError::QueryRefused(_))), "{q}: {r:?}");
        }
    }

    #[test]
    fn a_key_missing_in_one_dataset_and_a_type_mismatch_are_named() {
        let a = t("id,x\nA,1\n");
        let b = t("key,y\nA,1\n");
        let e = check_shared_columns(&[("a".into(), a.clone()), ("b".into(), b)], Some("id"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataset `b`") && e.contains("`id`"), "{e}");
        let c = t("id,x\nA,high\n");
        let e = check_shared_columns(&[("a".into(), a), ("c".into(), c)], Some("id"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `x`") && e.contains("dataset `a`") && e.contains("dataset `c`"),
            "{e}"
        );
    }

    #[test]
    fn union_reorders_columns_and_rejects_other_shapes() {
        let a = t("id,x\nA,1\n");
        let b = t("x,id\n2.5,B\n");
        let u = union(vec![("a".into(), a.clone()), ("b".into(), b)]).unwrap();
        assert_eq!(u.num_rows(), 2);
        assert_eq!(text(&u, "id", 1), "B");
        assert_eq!(
            text(&u, "x", 1),
            "2.5",
            "Int64 and Float64 stack as Float64"
        );
        assert_eq!(text(&u, "x", 0), "1.0");
        let c = t("id,y\nC,3\n");
        assert!(matches!(
            union(vec![("a".into(), a), ("c".into(), c)]),
            Err(JoinError::Shape { .. })
        ));
    }

    #[test]
    fn drop_columns_removes_the_named_and_ignores_absent_ones() {
        let a = t("id,x,y\nA,1,2\n");
        let jd = JoinedDataset {
            drop_columns: vec!["y".into(), "nope".into()],
            ..Default::default()
        };
        let d = drop_columns(a, &jd).unwrap();
        assert_eq!(d.columns(), vec!["id", "x"]);
        assert!(!d.batches[0].column(1).is_null(0));
    }
}
