//! Fine-tuning a causal language model's LoRA adapters (no DP yet): the loss is the mean
//! next-token cross-entropy over the positions an example marks (the completion's tokens when
//! the example has a prompt, else every token after the first), AdamW on the adapters only (the
//! base model frozen), mini-batches padded to their longest example.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::LlmError;
use super::model::CausalLm;

/// One training or held-out example as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The token ids (prompt then completion).
    pub ids: Vec<u32>,
    /// How many leading ids are prompt (no loss on predicting them); 0 for plain text.
    pub prompt_len: usize,
}

/// The training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    /// Passes over the training examples.
    pub epochs: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// AdamW's learning rate.
    pub lr: f64,
    /// AdamW's weight decay.
    pub weight_decay: f64,
    /// Seed of the batch order.
    pub seed: u64,
}

/// Each epoch's mean training loss.
#[derive(Debug, Clone, PartialEq)]
pub struct FitLog {
    /// Mean loss per epoch (per predicted token).
    pub train_loss: Vec<f64>,
}

/// Token ids `[B, T]`, next-token targets `[B, T]` and the loss mask `[B, T]` of a batch
/// (padding: id 0, masked out).
pub(crate) fn batch(
    examples: &[&Example],
    device: &burn::tensor::Device,
) -> (Vec<Vec<u32>>, Tensor<2, Int>, Tensor<2>) {
    let t = examples
        .iter()
        .map(|e| e.ids.len())
        .max()
        .unwrap_or(1)
        .max(2)
        - 1;
    let mut ids = Vec::with_capacity(examples.len());
    let mut targets = Vec::with_capacity(examples.len() * t);
    let mut mask = Vec::with_capacity(examples.len() * t);
    for e in examples {
        let mut row: Vec<u32> = e.ids.iter().take(t).copied().collect();
        row.resize(t, 0);
        ids.push(row);
        for p in 0..t {
            // Position p predicts token p + 1.
            let next = e.ids.get(p + 1).copied();
            targets.push(i64::from(next.unwrap_or(0)));
            let counted = next.is_some() && p + 1 >= e.prompt_len.max(1);
            mask.push(if counted { 1.0f32 } else { 0.0 });
        }
    }
    let b = examples.len();
    (
        ids,
        Tensor::from_data(TensorData::new(targets, [b, t]), device),
        Tensor::from_data(TensorData::new(mask, [b, t]), device),
    )
}

/// The summed masked next-token loss of a batch and the number of tokens it counts.
fn batch_loss(model: &CausalLm, examples: &[&Example]) -> Result<(Tensor<1>, f64), LlmError> {
    let device = model.embed.val().device();
    let (ids, targets, mask) = batch(examples, &device);
    let logits = model.forward(&ids)?;
    let logp = log_softmax(logits, 2);
    let picked = logp
        .gather(2, targets.unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2);
    let n = f64::from(mask.clone().sum().into_scalar::<f32>());
    Ok(((picked * mask).sum().neg(), n))
}

/// The mean next-token loss (nats per counted token) over `examples`, without gradients.
///
/// # Errors
/// [`LlmError::Input`] for ids the model cannot take.
pub fn eval_loss(
    model: &CausalLm,
    examples: &[Example],
    batch_size: usize,
) -> Result<f64, LlmError> {
    Ok(evaluate(model, examples, batch_size)?.loss)
}

/// Held-out figures of a model on some examples.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Mean next-token cross-entropy per counted token (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Counted tokens.
    pub tokens: u64,
    /// The share of counted tokens that are the model's top prediction (teacher forcing).
    pub token_accuracy: f64,
    /// The share of examples whose every counted token is the top prediction (for
    /// prompt/completion data: the completion is what greedy decoding gives).
    pub exact_match: f64,
}

/// Loss, perplexity, token accuracy and exact match over `examples`, without gradients and
/// without dropout.
///
/// # Errors
/// [`LlmError::Input`] for ids the model cannot take.
pub fn evaluate(
    model: &CausalLm,
    examples: &[Example],
    batch_size: usize,
) -> Result<Evaluation, LlmError> {
    let mut m = model.clone().no_grad();
    m.set_dropout_seed(None);
    let (mut sum, mut n, mut right, mut exact) = (0.0, 0.0, 0.0, 0usize);
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let device = m.embed.val().device();
        let (ids, targets, mask) = batch(&refs, &device);
        let logits = m.forward(&ids)?;
        let hit = logits
            .clone()
            .argmax(2)
            .squeeze_dim::<2>(2)
            .equal(targets.clone())
            .float()
            * mask.clone();
        let logp = log_softmax(logits, 2);
        let picked = logp
            .gather(2, targets.unsqueeze_dim::<3>(2))
            .squeeze_dim::<2>(2);
        sum -= f64::from((picked * mask.clone()).sum().into_scalar::<f32>());
        let counted = mask
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let hits = hit
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        for (c, h) in counted.iter().zip(&hits) {
            n += f64::from(*c);
            right += f64::from(*h);
            exact += usize::from(*c > 0.0 && h == c);
        }
    }
    let loss = if n > 0.0 { sum / n } else { 0.0 };
    Ok(Evaluation {
        loss,
        perplexity: loss.exp(),
        tokens: n as u64,
        token_accuracy: if n > 0.0 { right / n } else { 0.0 },
        exact_match: if examples.is_empty() {
            0.0
        } else {
            exact as f64 / examples.len() as f64
        },
    })
}

/// One example's mean next-token loss over its counted tokens, tracked (for gradient checks).
///
/// # Errors
/// [`LlmError::Input`] for ids the model cannot take.
pub fn eval_loss_tracked(model: &CausalLm, example: &Example) -> Result<Tensor<1>, LlmError> {
    let (l, n) = batch_loss(model, &[example])?;
    Ok(l / n.max(1.0))
}

/// Trains the model's trainable parameters (its LoRA adapters when the base is frozen, every
/// weight otherwise) on `train` with AdamW, LoRA dropout on; `keep_going` is called after each
/// epoch with its index and mean loss, and stops training when it says no.
///
/// # Errors
/// [`LlmError::Input`] for ids the model cannot take or no example with a counted token.
pub fn fit(
    mut model: CausalLm,
    train: &[Example],
    cfg: &FitConfig,
    keep_going: &mut dyn FnMut(usize, f64) -> bool,
) -> Result<(CausalLm, FitLog), LlmError> {
    if train.is_empty() {
        return Err(LlmError::Input("no training example".into()));
    }
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .init();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut log = FitLog {
        train_loss: Vec::new(),
    };
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut n) = (0.0, 0.0);
        for chunk in order.chunks(cfg.batch_size.max(1)) {
            let refs: Vec<&Example> = chunk.iter().map(|&i| &train[i]).collect();
            model.set_dropout_seed(Some(rand::Rng::r#gen(&mut rng)));
            let (loss, k) = batch_loss(&model, &refs)?;
            if k == 0.0 {
                continue;
            }
            sum += f64::from(loss.clone().into_scalar::<f32>());
            n += k;
            let grads = (loss / k).backward();
            let grads = GradientsParams::from_grads(grads, &model);
            model = optim.step(cfg.lr, model, grads);
        }
        let mean = if n > 0.0 { sum / n } else { 0.0 };
        log.train_loss.push(mean);
        if !keep_going(epoch, mean) {
            break;
        }
    }
    model.set_dropout_seed(None);
    Ok((model, log))
}

/// The frozen base: every parameter of `model` stops requiring gradients (attach LoRA after).
pub fn freeze(model: CausalLm) -> CausalLm {
    model.no_grad()
}
