//! Decrypted dataset files into Arrow record batches: CSV (the `arrow-csv` reader, streamed
//! from the decrypting reader: the plaintext file is never whole in memory, only the rows read
//! to infer the types) and parquet (the `parquet` crate's Arrow reader, from bytes in memory:
//! its footer is at the end).
//!
//! CSV is read as pandas' `read_csv` reads it, so that DEPA's files mean the same here:
//! - the first row is the header (names trimmed; an empty or repeated name is an error);
//! - a field is missing when it is empty or one of pandas' default `na_values` (`NA`, `N/A`,
//!   `NULL`, `NaN`, `nan`, `None`, `null`, `<NA>`, `#N/A`, …);
//! - column types are inferred: `Int64`, `Float64`, `Boolean` (`true`/`false` in any case), else
//!   text; dates stay text as pandas keeps them (`object`). The types are inferred from the
//!   first [`INFER_ROWS`] rows, and from every row when a later value does not fit (or a
//!   column has no value in the sample): the file is then read again from the start (decrypted
//!   again), once to infer and once to parse.
//!
//! Text columns become dictionaries (`Dictionary(Int32, Utf8)`: categorical columns, each value
//! stored once) except the ones the join matches on or names as identifiers, which stay
//! `Utf8`. Parquet's `LargeUtf8` and `Utf8View` are read the same way.
//!
//! Errors name the dataset, the file, and the line or column; they never quote a value.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::csv::reader::{Format, ReaderBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use zeroize::Zeroizing;

use super::{JoinError, Table};

/// Rows read to infer CSV column types before parsing (all rows when a value does not fit).
pub const INFER_ROWS: usize = 10_000;

/// Rows per record batch.
pub const BATCH_ROWS: usize = 64 * 1024;

/// pandas' default `na_values` (pandas.read_csv), plus the empty field.
static NA_VALUES: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(|#N/A|#N/A N/A|#NA|-1\.#IND|-1\.#QNAN|-NaN|-nan|1\.#IND|1\.#QNAN|<NA>|N/A|NA|NULL|NaN|None|n/a|nan|null)$",
    )
    .unwrap_or_else(|_| unreachable!("a fixed, valid pattern"))
});

/// The file formats a tabular dataset may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// Parquet when the bytes begin and end with `PAR1` or the name ends in `.parquet`
    /// (so that a damaged parquet file is reported as one), else CSV.
    pub fn detect(file: &str, bytes: &[u8]) -> Self {
        let magic = bytes.len() >= 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1");
        if magic || file.to_ascii_lowercase().ends_with(".parquet") {
            Self::Parquet
        } else {
            Self::Csv
        }
    }
}

/// Reads one dataset file into a table.
///
/// `plain_text` lists the text columns that stay `Utf8` (join keys, identifiers); every other
/// text column becomes a dictionary.
///
/// # Errors
/// [`JoinError::Csv`] (line and reason) or [`JoinError::Parquet`] (reason), naming the dataset
/// and file.
pub fn read(
    dataset: &str,
    file: &str,
    bytes: &[u8],
    plain_text: &[String],
) -> Result<Table, JoinError> {
    let t = match FileFormat::detect(file, bytes) {
        FileFormat::Csv => read_csv(dataset, file, bytes)?,
        FileFormat::Parquet => read_parquet(dataset, file, bytes)?,
    };
    dictionaries(dataset, file, t, plain_text)
}

/// Text columns as dictionaries, except those in `plain_text` (see the module documentation).
///
/// # Errors
/// [`JoinError::Csv`] naming the dataset and file when a column cannot be cast.
pub fn dictionaries(
    dataset: &str,
    file: &str,
    t: Table,
    plain_text: &[String],
) -> Result<Table, JoinError> {
    categorical(t, plain_text).map_err(|e| JoinError::Csv {
        dataset: dataset.into(),
        file: file.into(),
        line: 0,
        reason: e.to_string(),
    })
}

/// Parses CSV bytes (header row first); see the module documentation for types and missing
/// values.
///
/// # Errors
/// [`JoinError::Csv`] with the line.
pub fn read_csv(dataset: &str, file: &str, bytes: &[u8]) -> Result<Table, JoinError> {
    read_csv_stream(dataset, file, || Ok(Cursor::new(bytes)))
}

/// Parses CSV (header row first) from a stream: `open` gives a reader of the file from its
/// start (called again only when the types must be inferred from every row). Only the first
/// [`INFER_ROWS`] rows are held as text (zeroized when dropped); the rest goes from the reader
/// into record batches.
///
/// # Errors
/// [`JoinError::Csv`] with the line; a read error of `open`'s reader is reported as a CSV error
/// with its message (the caller, which knows the reader, may report it better).
pub fn read_csv_stream<R: Read>(
    dataset: &str,
    file: &str,
    open: impl Fn() -> io::Result<R>,
) -> Result<Table, JoinError> {
    let err = |line: u64, reason: String| JoinError::Csv {
        dataset: dataset.into(),
        file: file.into(),
        line,
        reason,
    };
    let io = |e: io::Error| err(0, format!("reading the file: {e}"));
    let format = Format::default()
        .with_header(true)
        .with_null_regex(NA_VALUES.clone());
    let infer = |r: &mut dyn Read, rows: Option<usize>| -> Result<Schema, JoinError> {
        let (schema, _) = format
            .infer_schema(r, rows)
            .map_err(|e| err(line_of(&e), csv_reason(&e, None)))?;
        pandas_types(&schema).map_err(|reason| err(1, reason))
    };
    let infer_all = || infer(&mut BufReader::new(open().map_err(io)?), None);
    // The header and the first INFER_ROWS rows (whole lines; a quoted field holding a line
    // break makes the sample a few rows shorter).
    let mut reader = BufReader::with_capacity(1 << 20, open().map_err(io)?);
    let mut head = Zeroizing::new(Vec::new());
    for _ in 0..=INFER_ROWS {
        if reader.read_until(b'\n', &mut head).map_err(io)? == 0 {
            break;
        }
    }
    let sampled = infer(&mut Cursor::new(&head[..]), Some(INFER_ROWS))?;
    let untyped = sampled
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Null);
    let (mut schema, mut full) = if untyped {
        (infer_all()?, true)
    } else {
        (sampled, false)
    };
    let mut first = Some(Cursor::new(&head[..]).chain(reader));
    loop {
        let parsed = match first.take() {
            Some(r) => parse_csv(r, &format, &schema),
            None => parse_csv(BufReader::new(open().map_err(io)?), &format, &schema),
        };
        match parsed {
            Ok(batches) => {
                let schema = Arc::new(schema);
                return Ok(Table::new(schema, batches));
            }
            // A value after the sample that the sampled type does not hold: infer from all.
            Err(e) if !full && matches!(e, ArrowError::ParseError(_)) => {
                schema = infer_all()?;
                full = true;
            }
            Err(e) => return Err(err(line_of(&e), csv_reason(&e, Some(&schema)))),
        }
    }
}

fn parse_csv<R: BufRead>(
    r: R,
    format: &Format,
    schema: &Schema,
) -> Result<Vec<RecordBatch>, ArrowError> {
    let reader = ReaderBuilder::new(Arc::new(schema.clone()))
        .with_format(format.clone())
        .with_batch_size(BATCH_ROWS)
        .build_buffered(r)?;
    reader.collect()
}

/// pandas' column types: trimmed, unique names; dates and times as text; a column without a
/// value is text (pandas: `float64` of NaN; either way no feature can come of it).
fn pandas_types(schema: &Schema) -> Result<Schema, String> {
    let mut seen = std::collections::HashSet::new();
    let mut fields = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let name = f.name().trim().to_string();
        if name.is_empty() || !seen.insert(name.clone()) {
            return Err(format!(
                "empty or duplicate column name `{name}` in the header"
            ));
        }
        let t = match f.data_type() {
            DataType::Int64 | DataType::Float64 | DataType::Boolean | DataType::Null => {
                f.data_type().clone()
            }
            _ => DataType::Utf8,
        };
        fields.push(Field::new(name, t, true));
    }
    Ok(Schema::new(fields))
}

/// The line an arrow-csv error names (`… line N …`), else 0.
fn line_of(e: &ArrowError) -> u64 {
    let s = e.to_string();
    s.split("line ")
        .nth(1)
        .and_then(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A CSV error without the values arrow-csv quotes (a parse error repeats the value and its
/// whole row): the column and the expected type only.
fn csv_reason(e: &ArrowError, schema: Option<&Schema>) -> String {
    match e {
        ArrowError::ParseError(s) => {
            let column = s
                .split("for column ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<usize>().ok());
            match (column, schema) {
                (Some(i), Some(schema)) if i < schema.fields().len() => {
                    let f = schema.field(i);
                    format!(
                        "column `{}`: a value is not of the column's type ({})",
                        f.name(),
                        f.data_type()
                    )
                }
                _ => "a value is not of its column's type".into(),
            }
        }
        ArrowError::CsvError(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads a parquet file.
///
/// # Errors
/// [`JoinError::Parquet`] naming the dataset and file.
pub fn read_parquet(dataset: &str, file: &str, bytes: &[u8]) -> Result<Table, JoinError> {
    let err = |reason: String| JoinError::Parquet {
        dataset: dataset.into(),
        file: file.into(),
        reason,
    };
    let data = bytes::Bytes::copy_from_slice(bytes);
    let builder = ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| err(e.to_string()))?
        .with_batch_size(BATCH_ROWS);
    let schema = builder.schema().clone();
    let mut seen = std::collections::HashSet::new();
    for f in schema.fields() {
        if f.name().is_empty() || !seen.insert(f.name().clone()) {
            return Err(err(format!(
                "empty or duplicate column name `{}`",
                f.name()
            )));
        }
    }
    let reader = builder.build().map_err(|e| err(e.to_string()))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    Ok(Table::new(schema, batches))
}

/// Text columns as dictionaries (or as plain `Utf8` for the `plain_text` ones).
fn categorical(t: Table, plain_text: &[String]) -> Result<Table, ArrowError> {
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let target: Vec<Option<DataType>> = t
        .schema
        .fields()
        .iter()
        .map(|f| {
            let text = is_text(f.data_type());
            match (text, plain_text.contains(f.name())) {
                (false, _) => None,
                (true, true) => Some(DataType::Utf8),
                (true, false) => Some(dict.clone()),
            }
            .filter(|want| want != f.data_type())
        })
        .collect();
    if target.iter().all(Option::is_none) {
        return Ok(t);
    }
    let fields: Vec<Field> = t
        .schema
        .fields()
        .iter()
        .zip(&target)
        .map(|(f, want)| match want {
            Some(dt) => Field::new(f.name(), dt.clone(), true),
            None => f.as_ref().clone(),
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let batches = t
        .batches
        .iter()
        .map(|b| {
            let cols: Vec<ArrayRef> = b
                .columns()
                .iter()
                .zip(&target)
                .map(|(c, want)| match want {
                    Some(dt) => cast(c.as_ref(), dt),
                    None => Ok(Arc::clone(c)),
                })
                .collect::<Result<_, _>>()?;
            RecordBatch::try_new(Arc::clone(&schema), cols)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table::new(schema, batches))
}

/// Whether a type holds text (plain, large, view, or a dictionary of text).
pub fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// Whether a column is numeric (integers, floats, decimals, booleans).
pub fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Boolean)
}

/// A short name of a column's type for errors (`number`, `text`, or Arrow's name).
pub fn kind_name(t: &DataType) -> String {
    if is_numeric(t) {
        format!("number ({t})")
    } else if is_text(t) {
        "text".into()
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Float64Array, Int64Array};

    #[test]
    fn csv_types_and_missing_values_follow_pandas() {
        let t = read(
            "d",
            "f.csv",
            b" id ,x,y,c,when\nA,1,0.5,red,2021-01-02\nB,NA,2,,2021-01-03\nC,3,nan,blue,\n",
            &["id".to_string()],
        )
        .unwrap();
        assert_eq!(t.columns(), vec!["id", "x", "y", "c", "when"]);
        let s = t.schema.clone();
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(s.field(1).data_type(), &DataType::Int64);
        assert_eq!(s.field(2).data_type(), &DataType::Float64);
        assert!(matches!(s.field(3).data_type(), DataType::Dictionary(..)));
        assert!(matches!(s.field(4).data_type(), DataType::Dictionary(..)));
        let b = &t.batches[0];
        let x = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!((x.value(0), x.is_null(1), x.value(2)), (1, true, 3));
        let y = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(y.is_null(2));
        assert!(b.column(3).is_null(1));
        assert_eq!(b.column(0).as_string::<i32>().value(2), "C");
    }

    #[test]
    fn a_value_after_the_sample_widens_the_type() {
        let mut csv = String::from("a,b\n");
        for i in 0..INFER_ROWS + 5 {
            csv.push_str(&format!("{i},{}\n", i % 3));
        }
        csv.push_str("1.5,x\n");
        let t = read_csv("d", "f.csv", csv.as_bytes()).unwrap();
        assert_eq!(t.schema.field(0).data_type(), &DataType::Float64);
        assert_eq!(t.schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(t.num_rows(), INFER_ROWS + 6);
    }

    #[test]
    fn a_ragged_row_is_an_error_with_its_line_and_no_value() {
        let e = read_csv("d", "f.csv", b"a,b\n1,2\n3,secret,9\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.csv") && e.contains("line 3"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = read_csv("d", "f.csv", b"a,a\n1,2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate column name `a`"), "{e}");
    }

    #[test]
    fn damaged_parquet_is_named_as_parquet() {
        let e = read("d", "f.parquet", b"PAR1 not really PAR1", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("parquet") && e.contains("f.parquet"), "{e}");
    }
}
