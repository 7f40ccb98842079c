//! The pipeline config (`pipeline_config.json`), in DEPA-Training's shape.
//!
//! ```json
//! {"pipeline": [ {"name": "SparkJoin" | "DirectoryJoin", "config": {...}},
//!                {"name": "Train_DL" | "Train_ML" | "Train_XGB", "config": {...}} ]}
//! ```
//!
//! or a `DirectoryJoin` of text datasets then `LLM_Finetune` ([`finetune`]).
//!
//! Every field ccr reads is documented on the structs below; unknown fields are rejected with
//! their JSON path (for instance `pipeline[1].config.optimizer.params.lrr`). Fields DEPA writes
//! that ccr does not need (`paths`, `joined_dataset.joined_dataset`, `model_output_folder`,
//! `joined_result_columns`, `data_type`, `missing_strategy`) are accepted and ignored: ccr keeps
//! the joined dataset in memory and writes its output where `--out` says.

//!
//! [`config`] holds the fields as serde reads them, each value typed (enums for the task, the
//! model, the loss, the metrics, the scaler, the optimizer, the formats); [`Pipeline::from_value`]
//! parses them once and checks what serde cannot (one join then one train step, the model
//! against the task, XGBoost's and the CNN's fields, DP parameters), naming the JSON path.

mod check;
pub mod config;
pub mod dataset;
pub mod finetune;
pub mod loss;
pub mod metric;
pub mod scheduler;
pub mod steps;

pub use config::*;
pub use dataset::*;
pub use finetune::{FinetuneConfig, FinetuneMethod};
pub use loss::expr::ExpressionLoss;
pub use loss::*;
pub use metric::*;
pub use scheduler::*;
pub use steps::{PipelineConfig, Step};

use serde_json::Value;

/// The pipeline config's JSON Schema (draft 2020-12), published as
/// `runtime/schema/pipeline_config.schema.json`; validate with `ccr_policy::schema::errors`.
pub const SCHEMA: &str = include_str!("../../schema/pipeline_config.schema.json");

/// Errors of the pipeline config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The JSON does not parse or has an unknown or mistyped field or value.
    #[error("pipeline config: at `{path}`: {reason}")]
    Json {
        /// JSON path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A field holds a value ccr cannot run.
    #[error("pipeline config: `{path}`: {reason}")]
    Field {
        /// JSON path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The training framework of the train step (DEPA's step names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// `Train_DL`: neural networks.
    TrainDl,
    /// `Train_ML`: classical models.
    TrainMl,
    /// `Train_XGB`: gradient-boosted trees.
    TrainXgb,
    /// `LLM_Finetune`: a causal language model fine-tuned on text.
    LlmFinetune,
}

impl Framework {
    /// DEPA's step name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TrainDl => "Train_DL",
            Self::TrainMl => "Train_ML",
            Self::TrainXgb => "Train_XGB",
            Self::LlmFinetune => "LLM_Finetune",
        }
    }
}

/// The parsed pipeline: a join and a train step, or a train step alone (DEPA's one-step
/// pipelines, whose dataset is `paths.input_dataset_path`).
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The join step (for a one-step pipeline, [`Join::Single`]).
    pub join: Join,
    /// The training config (for `LLM_Finetune`, its fields that every train step shares:
    /// epochs, batch size, optimizer, DP; the rest is in [`Pipeline::finetune`]).
    pub train: TrainConfig,
    /// Which train step.
    pub framework: Framework,
    /// `LLM_Finetune`'s config.
    pub finetune: Option<Box<FinetuneConfig>>,
}

/// The join kind with its config.
#[derive(Debug, Clone)]
pub enum Join {
    /// Keyed join (SQL).
    Keyed(JoinConfig),
    /// Union.
    Union(JoinConfig),
    /// A one-step pipeline's one dataset, from `paths.input_dataset_path`
    /// (`/mnt/remote/<name>/<file>`); its `id` is the contract's dataset of that name or owner
    /// ([`Pipeline::bind_single`]).
    Single(JoinConfig),
}

impl Join {
    /// The config.
    pub fn config(&self) -> &JoinConfig {
        match self {
            Self::Keyed(c) | Self::Union(c) | Self::Single(c) => c,
        }
    }
}

impl Pipeline {
    /// Parses and checks a pipeline config.
    ///
    /// # Errors
    /// [`PipelineError`] naming the field's path.
    pub fn from_value(v: &Value) -> Result<Self, PipelineError> {
        let cfg: PipelineConfig = serde_path_to_error::deserialize(v.clone()).map_err(|e| {
            // A field read by its own deserializer names the rest of its path first.
            let (mut path, mut reason) = (e.path().to_string(), e.inner().to_string());
            while let Some(rest) = reason.strip_prefix("at `")
                && let Some((inner, r)) = rest.split_once("`: ")
            {
                path = format!("{path}.{inner}");
                reason = r.to_string();
            }
            PipelineError::Json { path, reason }
        })?;
        let one_step = cfg.pipeline.len() == 1;
        if !(1..=2).contains(&cfg.pipeline.len()) {
            return Err(check::field(
                "pipeline",
                "expected a join step then a train step, or a train step alone",
            ));
        }
        let mut it = cfg.pipeline.into_iter();
        let join = if one_step {
            None
        } else {
            Some(check::join(it.next())?)
        };
        let (mut train, framework) = match it.next() {
            Some(Step::LlmFinetune(f)) => return Self::finetune(join, f),
            Some(Step::TrainDl(c)) => (c, Framework::TrainDl),
            Some(Step::TrainMl(c)) => (c, Framework::TrainMl),
            Some(Step::TrainXgb(c)) => (c, Framework::TrainXgb),
            _ => {
                let (at, which) = if one_step {
                    ("pipeline[0].name", "a one-step pipeline's step")
                } else {
                    ("pipeline[1].name", "the second step")
                };
                return Err(check::field(
                    at,
                    &format!(
                        "{which} must be Train_DL, Train_ML or Train_XGB (LLM_Finetune follows a DirectoryJoin)"
                    ),
                ));
            }
        };
        let renumber = |e: PipelineError| match e {
            PipelineError::Field { path, reason } if one_step => PipelineError::Field {
                path: path.replacen("pipeline[1]", "pipeline[0]", 1),
                reason,
            },
            e => e,
        };
        // Train_ML's linear models without DP are solved as scikit-learn solves them.
        if framework == Framework::TrainMl
            && !train.is_private
            && train.model_config.solver.is_none()
            && train.model_config.model_format != Some(ModelFormat::Safetensors)
            && train.loss_config.is_none()
            && train.scheduler.is_none()
            && matches!(
                train.model_config.name,
                ModelName::LogisticRegression | ModelName::LinearRegression
            )
        {
            train.model_config.solver = Some(Solver::Lbfgs);
        }
        check::train(&train, framework).map_err(renumber)?;
        let join = match join {
            Some(j) => {
                check::joined_path(&j, &train)?;
                j
            }
            None => check::single(&train).map_err(renumber)?,
        };
        Ok(Self {
            join,
            train,
            framework,
            finetune: None,
        })
    }

    /// A `DirectoryJoin` (the union of the text datasets) then `LLM_Finetune`.
    fn finetune(join: Option<Join>, f: Box<FinetuneConfig>) -> Result<Self, PipelineError> {
        const P: &str = "pipeline[1].config";
        let Some(join @ Join::Union(_)) = join else {
            return Err(check::field(
                "pipeline[0].name",
                "LLM_Finetune's datasets are joined by DirectoryJoin (their union)",
            ));
        };
        finetune::check(&f, P)?;
        let train = f
            .as_train_config()
            .map_err(|e| check::field(P, &e.to_string()))?;
        if train.is_private {
            check::privacy_of(&train)?;
        }
        Ok(Self {
            join,
            train,
            framework: Framework::LlmFinetune,
            finetune: Some(f),
        })
    }

    /// Gives a one-step pipeline's dataset the id of the contract's dataset it names: the one
    /// whose `name` or `owner` is the mount folder of `paths.input_dataset_path`, or the
    /// contract's only dataset.
    ///
    /// # Errors
    /// [`PipelineError::Field`] naming `paths.input_dataset_path` when no dataset (or more
    /// than one) fits.
    pub fn bind_single(
        &mut self,
        datasets: &[(String, String, Option<String>)],
    ) -> Result<(), PipelineError> {
        let Join::Single(c) = &mut self.join else {
            return Ok(());
        };
        let d = &mut c.datasets[0];
        let named: Vec<&(String, String, Option<String>)> = datasets
            .iter()
            .filter(|(_, name, owner)| *name == d.name || owner.as_deref() == Some(d.name.as_str()))
            .collect();
        let pick = match (&named[..], datasets) {
            ([one], _) => *one,
            ([], [only]) => only,
            _ => {
                return Err(check::field(
                    "pipeline[0].config.paths.input_dataset_path",
                    &format!(
                        "`{}` names no single dataset of the contract (by name or owner)",
                        d.name
                    ),
                ));
            }
        };
        d.id = pick.0.clone();
        Ok(())
    }
}

/// The (epsilon, delta) a private training step plans to spend on each dataset: its
/// `privacy_params` `epsilon` and `delta` (the targets the accountant keeps to); `None` without
/// DP.
pub fn planned_privacy(train: &TrainConfig) -> Option<(f64, f64)> {
    if !train.is_private {
        return None;
    }
    let num = |k: &str| privacy_param(train, k);
    num("epsilon").zip(num("delta"))
}

/// A number of `privacy_params` (DEPA may write it as a string).
pub fn privacy_param(train: &TrainConfig, key: &str) -> Option<f64> {
    train.privacy_params.as_ref()?.get(key).and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    })
}

#[cfg(test)]
mod depa_tests {
    use super::*;

    fn depa(rel: &str) -> Option<Value> {
        let p = format!("{}/../../shared/depa/{rel}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(p).ok()?;
        Some(serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn depas_scenario_configs_parse_unchanged_and_meet_the_schema() {
        let Some(covid) = depa("covid/config/pipeline_config.json") else {
            eprintln!("skipped: ../shared/depa is absent");
            return;
        };
        for (name, v) in [
            ("covid", covid),
            ("mnist", depa("mnist/config/pipeline_config.json").unwrap()),
            (
                "cifar10",
                depa("cifar10/config/pipeline_config.json").unwrap(),
            ),
        ] {
            let errors = ccr_policy::schema::errors(SCHEMA, &v);
            assert!(errors.is_empty(), "{name}: {errors:?}");
            let p = Pipeline::from_value(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
            match name {
                "covid" => {
                    assert!(matches!(p.join, Join::Keyed(_)));
                    assert_eq!(p.train.model_config.name, ModelName::BaseModel);
                    assert_eq!(p.train.model_type, Some(ModelType::Onnx));
                    assert!(p.train.is_private);
                }
                _ => {
                    let Join::Single(c) = &p.join else {
                        panic!("{name}: a one-step pipeline")
                    };
                    assert_eq!(c.datasets[0].name, name);
                    assert_eq!(c.datasets[0].mount_path, format!("/mnt/remote/{name}/"));
                    assert_eq!(p.train.dataset_config.kind, DatasetKind::Serialized);
                }
            }
        }
        // The one-step dataset takes the id of the contract's dataset it names (by owner).
        let mut p =
            Pipeline::from_value(&depa("mnist/config/pipeline_config.json").unwrap()).unwrap();
        p.bind_single(&[
            ("other".into(), "x".into(), Some("someone".into())),
            (
                "19517ba8".into(),
                "mnist-handwritten-digits".into(),
                Some("mnist".into()),
            ),
        ])
        .unwrap();
        assert_eq!(p.join.config().datasets[0].id, "19517ba8");
        let e = p
            .bind_single(&[
                ("a".into(), "a".into(), None),
                ("b".into(), "b".into(), None),
            ])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("paths.input_dataset_path") && e.contains("`mnist` names no single dataset"),
            "{e}"
        );
    }
}
