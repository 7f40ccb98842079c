//! Text datasets for `LLM_Finetune`, tokenized with the base model's `tokenizer.json`
//! (Hugging Face `tokenizers`): JSONL records with a `text` field (the loss on every token
//! after the first), or `prompt` and `completion` (the loss on the completion's tokens only),
//! each example closed by the end-of-sequence token; sequences over `max_seq_len` truncated,
//! or refused when truncation is off.

use serde_json::Value;
use tokenizers::Tokenizer;

use super::LlmError;
use super::train::Example;

/// One record of a text dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Plain text.
    Text(String),
    /// A prompt and its completion.
    PromptCompletion(String, String),
}

/// Reads JSONL records (`text`, or `prompt` and `completion`; the field names given).
///
/// # Errors
/// [`LlmError::Input`] naming the dataset, the line and the field: a line that is not a JSON
/// object, a missing or non-string field. The values themselves are never quoted (they are
/// data).
pub fn read_jsonl(
    dataset: &str,
    bytes: &[u8],
    text_field: &str,
    prompt_field: &str,
    completion_field: &str,
) -> Result<Vec<Record>, LlmError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| LlmError::Input(format!("dataset `{dataset}`: not UTF-8 ({e})")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |what: String| LlmError::Input(format!("dataset `{dataset}` line {}: {what}", i + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let field = |f: &str| -> Result<Option<String>, LlmError> {
            match v.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(format!("field `{f}` is not a string"))),
            }
        };
        if !v.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        match (
            field(prompt_field)?,
            field(completion_field)?,
            field(text_field)?,
        ) {
            (Some(p), Some(c), _) => out.push(Record::PromptCompletion(p, c)),
            (None, None, Some(t)) => out.push(Record::Text(t)),
            (Some(_), None, _) => {
                return Err(bad(format!(
                    "`{prompt_field}` without `{completion_field}`"
                )));
            }
            (None, Some(_), _) => {
                return Err(bad(format!(
                    "`{completion_field}` without `{prompt_field}`"
                )));
            }
            (None, None, None) => {
                return Err(bad(format!(
                    "no `{text_field}` field, nor `{prompt_field}` and `{completion_field}`"
                )));
            }
        }
    }
    Ok(out)
}

/// Reads CSV records (with a header): the column `text_field`, or the columns `prompt_field`
/// and `completion_field`.
///
/// # Errors
/// [`LlmError::Input`] naming the dataset (and the record): CSV that does not parse, a header
/// with neither the text column nor both prompt and completion columns (the header is named;
/// values never are).
pub fn read_csv(
    dataset: &str,
    bytes: &[u8],
    text_field: &str,
    prompt_field: &str,
    completion_field: &str,
) -> Result<Vec<Record>, LlmError> {
    let bad = |what: String| LlmError::Input(format!("dataset `{dataset}`: {what}"));
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let header: Vec<String> = r
        .headers()
        .map_err(|e| bad(format!("CSV header: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    let col = |n: &str| header.iter().position(|h| h == n);
    let pick = match (col(prompt_field), col(completion_field), col(text_field)) {
        (Some(p), Some(c), _) => Err((p, c)),
        (_, _, Some(t)) => Ok(t),
        _ => {
            return Err(bad(format!(
                "no column `{text_field}`, nor `{prompt_field}` and `{completion_field}` (columns: {header:?})"
            )));
        }
    };
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| bad(format!("CSV record {}: {e}", i + 1)))?;
        let get = |j: usize| rec.get(j).unwrap_or("").to_string();
        // `Ok`: the text column; `Err`: the prompt and completion columns.
        out.push(match pick {
            Ok(t) => Record::Text(get(t)),
            Err((p, c)) => Record::PromptCompletion(get(p), get(c)),
        });
    }
    Ok(out)
}

/// Packs plain-text examples end to end into sequences of `max_len` tokens (the last one
/// shorter), as TRL's `packing=True`; prompt/completion examples are kept whole, after them.
pub fn pack(examples: Vec<Example>, max_len: usize) -> Vec<Example> {
    let (text, pc): (Vec<Example>, Vec<Example>) =
        examples.into_iter().partition(|e| e.prompt_len == 0);
    let stream: Vec<u32> = text.into_iter().flat_map(|e| e.ids).collect();
    let mut out: Vec<Example> = stream
        .chunks(max_len.max(2))
        .filter(|c| c.len() >= 2)
        .map(|c| Example {
            ids: c.to_vec(),
            prompt_len: 0,
        })
        .collect();
    out.extend(pc);
    out
}

/// A tokenizer checked against the model's vocabulary.
pub struct TextTokenizer {
    tok: Tokenizer,
    eos: Option<u32>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Reads `tokenizer.json`; `eos` is the model's `eos_token_id` when its config gives one.
    ///
    /// # Errors
    /// [`LlmError::Config`]: a tokenizer that does not parse, or whose vocabulary has ids the
    /// model's embedding does not (`vocab_size`).
    pub fn from_json(bytes: &[u8], model_vocab: usize, eos: Option<u32>) -> Result<Self, LlmError> {
        let tok = Tokenizer::from_bytes(bytes).map_err(|e| LlmError::Config {
            field: "tokenizer.json".into(),
            reason: e.to_string(),
        })?;
        let n = tok.get_vocab_size(true);
        if let Some(e) = eos.filter(|&e| e as usize >= model_vocab) {
            return Err(LlmError::Config {
                field: "eos_token_id".into(),
                reason: format!("{e} is outside the vocabulary of {model_vocab}"),
            });
        }
        if n > model_vocab {
            return Err(LlmError::Config {
                field: "tokenizer.json".into(),
                reason: format!(
                    "{n} tokens; the model's vocab_size is {model_vocab} (not this model's tokenizer?)"
                ),
            });
        }
        Ok(Self { tok, eos })
    }

    /// The ids of `text` (no special tokens added).
    ///
    /// # Errors
    /// [`LlmError::Input`] when the tokenizer fails.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.tok
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| LlmError::Input(format!("tokenizer: {e}")))
    }

    /// `ids` as text.
    ///
    /// # Errors
    /// [`LlmError::Input`] when the tokenizer fails.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.tok
            .decode(ids, false)
            .map_err(|e| LlmError::Input(format!("tokenizer: {e}")))
    }

    /// Records as training examples: `text` (loss after the first token) or `prompt` +
    /// `completion` (loss on the completion), each closed by the end-of-sequence token, at
    /// most `max_len` tokens: longer ones truncated from the end when `truncate`, else refused.
    ///
    /// # Errors
    /// [`LlmError::Input`] naming the dataset and record for a sequence over `max_len` with
    /// truncation off, or a prompt that leaves no room for its completion.
    pub fn examples(
        &self,
        dataset: &str,
        records: &[Record],
        max_len: usize,
        truncate: bool,
    ) -> Result<Vec<Example>, LlmError> {
        let mut out = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let (mut ids, prompt_len) = match r {
                Record::Text(t) => (self.encode(t)?, 0),
                Record::PromptCompletion(p, c) => {
                    let mut ids = self.encode(p)?;
                    let n = ids.len();
                    ids.extend(self.encode(c)?);
                    (ids, n)
                }
            };
            ids.extend(self.eos);
            if ids.len() > max_len {
                if !truncate {
                    return Err(LlmError::Input(format!(
                        "dataset `{dataset}` record {}: {} tokens, over max_seq_len {max_len} (truncation is off)",
                        i + 1,
                        ids.len()
                    )));
                }
                ids.truncate(max_len);
            }
            if prompt_len >= ids.len() {
                return Err(LlmError::Input(format!(
                    "dataset `{dataset}` record {}: the prompt fills max_seq_len {max_len}; no completion token is left",
                    i + 1
                )));
            }
            out.push(Example { ids, prompt_len });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_come_from_the_named_columns() {
        let csv = b"id,prompt,completion\n1,\"a, b\",c\n2,d,e\n";
        let r = read_csv("ds", csv, "text", "prompt", "completion").unwrap();
        assert_eq!(
            r,
            vec![
                Record::PromptCompletion("a, b".into(), "c".into()),
                Record::PromptCompletion("d".into(), "e".into())
            ]
        );
        let r = read_csv("ds", b"body\nhello\n", "body", "p", "c").unwrap();
        assert_eq!(r, vec![Record::Text("hello".into())]);
        let e = read_csv("ds", b"x,y\n1,2\n", "text", "prompt", "completion")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dataset `ds`") && e.contains("no column `text`") && e.contains("\"x\""),
            "{e}"
        );
    }

    #[test]
    fn packing_joins_plain_text_and_keeps_prompts_whole() {
        let ex = |ids: &[u32], p: usize| Example {
            ids: ids.to_vec(),
            prompt_len: p,
        };
        let packed = pack(
            vec![
                ex(&[1, 2, 3], 0),
                ex(&[9, 9, 9, 9], 2),
                ex(&[4, 5, 6, 7], 0),
                ex(&[8], 0),
            ],
            3,
        );
        assert_eq!(
            packed,
            vec![
                ex(&[1, 2, 3], 0),
                ex(&[4, 5, 6], 0),
                ex(&[7, 8], 0),
                ex(&[9, 9, 9, 9], 2)
            ]
        );
    }
}
