//! `SparkJoin`'s `joining_query` on Apache DataFusion: each dataset a memory table named after
//! its `name`, the query planned and run there, all in memory.
//!
//! - **Read-only, one statement.** The query is parsed first (DataFusion's parser, generic
//!   dialect: `"…"` and `` `…` `` quote identifiers as in Spark SQL) and must be exactly one
//!   query (`SELECT`, `WITH … SELECT`, set operations); DDL, DML, `COPY`, `EXPLAIN`, `SET` and a
//!   second statement are refused before anything is planned, and the plan is checked again
//!   with DataFusion's `SQLOptions` (no DDL, no DML, no statements).
//! - **Names as written.** Identifiers are not folded to lower case (DataFusion's
//!   `enable_ident_normalization` off), so `SK_ID_CURR` finds the column `SK_ID_CURR`, as in
//!   Spark.
//! - **No spill.** DataFusion's disk manager is disabled: a join that does not fit in memory
//!   fails ("resources exhausted") instead of writing decrypted rows to a temporary file.
//! - **Both cores.** The plan runs with one partition per core on a multi-threaded Tokio
//!   runtime.
//! - **Each dataset handed over once.** A dataset the query reads once is a one-shot stream
//!   ([`OneShot`]): its batches move into the plan when the scan starts and each is freed as
//!   soon as the join has used it (the probe side batch by batch, the build side once it is
//!   gathered into the hash table), so the datasets and the joined table do not all sit in
//!   memory at the end. A dataset the query reads more than once (a self-join) stays a memory
//!   table.
//!
//! A `SELECT *` over a join repeats the key column; in the result, later copies of a name get
//! a suffix (`pk:1`, `pk:2`), as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::{JoinError, Table};

/// Checks that `query` is a single read-only query (see the module documentation).
///
/// # Errors
/// [`JoinError::QueryRefused`] saying why; [`JoinError::Sql`] when it does not parse.
pub fn check_read_only(query: &str) -> Result<(), JoinError> {
    let statements =
        DFParser::parse_sql(query).map_err(|e| JoinError::Sql(format!("does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(JoinError::QueryRefused(format!(
            "{} statements; exactly one SELECT is allowed",
            statements.len()
        )));
    }
    match &statements[0] {
        Statement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_)) => Ok(()),
        Statement::Statement(s) => Err(JoinError::QueryRefused(format!(
            "it must be a single SELECT statement, not `{}`",
            first_words(&s.to_string())
        ))),
        other => Err(JoinError::QueryRefused(format!(
            "it must be a single SELECT statement, not `{}`",
            first_words(&other.to_string())
        ))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// Runs a keyed join: `tables` are `(name, table)` pairs, each registered under its name.
///
/// # Errors
/// [`JoinError::QueryRefused`] for anything but one read-only query; [`JoinError::Sql`] for a
/// query DataFusion cannot plan or run (an unknown table or column, a type it cannot compare,
/// memory exhausted).
pub fn keyed_join(tables: Vec<(String, Table)>, query: &str) -> Result<Table, JoinError> {
    check_read_only(query)?;
    let sql = |e: DataFusionError| JoinError::Sql(e.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut config = SessionConfig::new()
        .with_target_partitions(cores)
        .with_batch_size(super::read::BATCH_ROWS);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let runtime = RuntimeEnvBuilder::new()
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(sql)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let mut shots = Vec::with_capacity(tables.len());
    for (name, t) in tables {
        let shot = Arc::new(OneShot::new(&name, t));
        let table =
            StreamingTable::try_new(Arc::clone(&shot.schema), vec![shot.clone()]).map_err(sql)?;
        ctx.register_table(name.as_str(), Arc::new(table))
            .map_err(sql)?;
        shots.push((name, shot));
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("ccr-join")
        .build()
        .map_err(|e| JoinError::Sql(format!("cannot start the join's threads: {e}")))?;
    let batches: Vec<RecordBatch> = rt.block_on(async {
        let mut df = ctx.sql_with_options(query, options).await.map_err(sql)?;
        // A dataset scanned more than once becomes a memory table (a one-shot stream would be
        // empty the second time), and the query is planned again.
        let scans = scans_per_table(df.logical_plan()).map_err(sql)?;
        let mut replan = false;
        for (name, shot) in &shots {
            if scans.get(name.as_str()).copied().unwrap_or(0) > 1 {
                let (schema, batches) = shot.take_back();
                let mem = MemTable::try_new(schema, vec![batches]).map_err(sql)?;
                ctx.deregister_table(name.as_str()).map_err(sql)?;
                ctx.register_table(name.as_str(), Arc::new(mem))
                    .map_err(sql)?;
                replan = true;
            }
        }
        if replan {
            df = ctx.sql_with_options(query, options).await.map_err(sql)?;
        }
        drop(shots);
        df.collect().await.map_err(sql)
    })?;
    drop(ctx);
    let Some(first) = batches.first() else {
        return Err(JoinError::Empty);
    };
    // Unique names: later copies of a repeated name get `:1`, `:2`, …
    let mut names: Vec<String> = Vec::new();
    let fields: Vec<Field> = first
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let mut n = f.name().clone();
            let mut k = 1;
            while names.contains(&n) {
                n = format!("{}:{k}", f.name());
                k += 1;
            }
            names.push(n.clone());
            Field::new(n, f.data_type().clone(), true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batches = batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JoinError::Sql(e.to_string()))?;
    let t = Table::new(schema, batches);
    if t.num_rows() == 0 {
        return Err(JoinError::Empty);
    }
    Ok(t)
}

/// A dataset handed to DataFusion once (see the module documentation): a one-partition
/// stream whose batches move out on the first scan. A second scan is an error, never an empty
/// table.
#[derive(Debug)]
pub struct OneShot {
    name: String,
    schema: SchemaRef,
    batches: Mutex<Option<Vec<RecordBatch>>>,
}

impl OneShot {
    fn new(name: &str, t: Table) -> OneShot {
        OneShot {
            name: name.to_string(),
            schema: t.schema,
            batches: Mutex::new(Some(t.batches)),
        }
    }

    /// The batches, if no scan has taken them.
    fn take_back(&self) -> (SchemaRef, Vec<RecordBatch>) {
        let batches = self
            .batches
            .lock()
            .map(|mut b| b.take().unwrap_or_default())
            .unwrap_or_default();
        (Arc::clone(&self.schema), batches)
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.batches.lock().ok().and_then(|mut b| b.take());
        let items: Vec<Result<RecordBatch, DataFusionError>> = match taken {
            Some(batches) => batches.into_iter().map(Ok).collect(),
            None => vec![Err(DataFusionError::Execution(format!(
                "dataset `{}` is read twice by the query",
                self.name
            )))],
        };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(items),
        ))
    }
}

/// How many times the plan scans each table (subqueries included).
fn scans_per_table(plan: &LogicalPlan) -> Result<HashMap<String, usize>, DataFusionError> {
    let mut scans = HashMap::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(s) = node {
            *scans.entry(s.table_name.table().to_string()).or_insert(0) += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(scans)
}
