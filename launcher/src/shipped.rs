//! Checks for the shipped mappers (`flywheel:generate`, `flywheel:embed`) that must hold before
//! any worker starts: known arguments with valid values (from the one table of them,
//! [`flywheel_protocol::ShippedMapper`]), a local model directory, the input column, and the
//! Python libraries in the chosen interpreter.

use crate::error::{bad_input, CliError};
use anyhow::anyhow;
use arrow::datatypes::Schema as ArrowSchema;
use flywheel_protocol::{JobOptions, ShippedMapper};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `flywheel map --help` text after the options: the mapper forms, and each shipped mapper
/// with its arguments, from their table.
pub fn map_after_help() -> String {
    let mut text = String::from(
        "Example:\n  flywheel map --input examples/data/dialogues.parquet --output out/pairs \\\n      --mapper examples/expand_dialogue.py:ExpandDialogue --workers 2\n\nA growing dataset (only new or changed chunks run; --dry-run first says which):\n  flywheel map --input 'shards/*.parquet' --output out/pairs \\\n      --mapper examples/expand_dialogue.py:ExpandDialogue --incremental [--dry-run]\n\nMappers: FILE.py:NAME (a Python function or class), exec:COMMAND ARGS… (JSON-lines\nprotocol, docs/protocol.md), builtin:identity, and the shipped Python mappers, each taking\n--mapper-arg KEY=VALUE (the default shown after =):\n\n",
    );
    for mapper in ShippedMapper::ALL {
        text += &mapper.help();
    }
    text += "\n  e.g. flywheel map --input prompts.parquet --output answers --mapper flywheel:generate \\\n           --mapper-arg model=/models/Qwen2.5-0.5B-Instruct --mapper-arg max_new_tokens=256\n\nThe model loads once per worker (start()), onto the worker's GPU when there is one.";
    text
}

/// The modules `python` cannot import, of `modules`.
fn missing_modules(python: &str, modules: &[&str]) -> Result<Vec<String>, CliError> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))",
        ])
        .args(modules)
        .output()
        .map_err(|e| bad_input(anyhow!("cannot run the Python '{python}' (--python): {e}")))?;
    if !out.status.success() {
        return Err(bad_input(anyhow!(
            "the Python '{python}' (--python) failed to start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// The width of a model's hidden states, from its config.json.
fn hidden_size(config: &serde_json::Value) -> Option<u64> {
    [
        "hidden_size",
        "d_model",
        "n_embd",
        "dim",
        "word_embed_proj_dim",
    ]
    .iter()
    .find_map(|k| config[k].as_u64())
    .or_else(|| config["text_config"]["hidden_size"].as_u64())
}

/// Checks a shipped mapper's configuration against the input; returns the output schema (in
/// flywheel's language) when the mapper fixes one (`embed`: the input's columns plus
/// `vector<N, fp16>`). Makes the model path absolute in `job.mapper_args`.
pub fn preflight(
    job: &mut JobOptions,
    mapper: ShippedMapper,
    input: &ArrowSchema,
) -> Result<Option<String>, CliError> {
    mapper.check_keys(&job.mapper_args).map_err(bad_input)?;
    let (dir, config) = model_config(job, mapper)?;
    job.mapper_args
        .insert("model".into(), dir.display().to_string());
    let output = check_columns(job, mapper, input)?;
    // The values, as the worker will hand them to Python.
    mapper.python_args(&job.mapper_args).map_err(bad_input)?;
    check_libraries(job, mapper)?;
    match mapper {
        ShippedMapper::Embed if job.schema.is_none() => {
            embed_schema(input, &output, &dir.join("config.json"), &config).map(Some)
        }
        ShippedMapper::Embed | ShippedMapper::Generate => Ok(None),
    }
}

/// The model: a local directory (made absolute) with a readable config.json.
fn model_config(
    job: &JobOptions,
    mapper: ShippedMapper,
) -> Result<(PathBuf, serde_json::Value), CliError> {
    let model = mapper
        .text_of(&job.mapper_args, "model")
        .unwrap_or_default();
    let dir = std::path::absolute(PathBuf::from(model))
        .map_err(|e| bad_input(anyhow!("model directory '{model}': {e}")))?;
    if !dir.is_dir() {
        return Err(bad_input(anyhow!(
            "flywheel:{mapper}: model directory {} does not exist",
            dir.display()
        )));
    }
    let config: serde_json::Value = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            bad_input(anyhow!(
                "flywheel:{mapper}: {} has no readable config.json; is it a Hugging Face model directory?",
                dir.display()
            ))
        })?;
    Ok((dir, config))
}

/// The input has the mapper's column and none of the columns the output adds; returns the
/// output column's name.
fn check_columns(
    job: &JobOptions,
    mapper: ShippedMapper,
    input: &ArrowSchema,
) -> Result<String, CliError> {
    let args = &job.mapper_args;
    let column = mapper.text_of(args, "column").unwrap_or_default();
    if input.index_of(column).is_err() {
        let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(bad_input(anyhow!(
            "flywheel:{mapper}: the input has no column '{column}' (columns: {}); choose one with --mapper-arg column=NAME",
            names.join(", ")
        )));
    }
    let output = mapper.text_of(args, "output_column").unwrap_or_default();
    let added: &[&str] = match mapper {
        ShippedMapper::Embed => &[output],
        ShippedMapper::Generate => &[output, "prompt_tokens", "completion_tokens"],
    };
    if let Some(a) = added.iter().find(|a| input.index_of(a).is_ok()) {
        return Err(bad_input(anyhow!(
            "flywheel:{mapper}: the input already has a column '{a}', which the output adds; rename the output with --mapper-arg output_column=NAME"
        )));
    }
    Ok(output.to_string())
}

/// The libraries the mapper needs, in the Python the workers will run: vLLM, or torch and
/// transformers (`generate` with `engine=auto` is content with either).
fn check_libraries(job: &JobOptions, mapper: ShippedMapper) -> Result<(), CliError> {
    let engine = mapper
        .text_of(&job.mapper_args, "engine")
        .unwrap_or("auto")
        .to_ascii_lowercase();
    let wanted: &[&str] = match (mapper, engine.as_str()) {
        (ShippedMapper::Generate, "vllm") => &["vllm"],
        (ShippedMapper::Generate, "auto") => &["vllm", "torch", "transformers"],
        (ShippedMapper::Generate | ShippedMapper::Embed, _) => &["torch", "transformers"],
    };
    let missing = missing_modules(&job.python, wanted)?;
    let either = mapper == ShippedMapper::Generate && engine == "auto";
    let lacking: Vec<&str> = if either && !missing.iter().any(|m| m == "vllm") {
        Vec::new()
    } else {
        ["torch", "transformers", "vllm"]
            .into_iter()
            .filter(|m| missing.iter().any(|x| x == m))
            .filter(|m| *m != "vllm" || engine == "vllm")
            .collect()
    };
    if lacking.is_empty() {
        return Ok(());
    }
    let needs = match (mapper, engine.as_str()) {
        (ShippedMapper::Generate, "vllm") => "vllm",
        (ShippedMapper::Generate, _) => "torch and transformers (or vLLM)",
        (ShippedMapper::Embed, _) => "torch and transformers",
    };
    Err(bad_input(anyhow!(
        "flywheel:{mapper} needs {needs} in the Python '{}', which cannot import {}: install with `{} -m pip install {}`, or choose another interpreter with --python",
        job.python,
        lacking.join(", "),
        job.python,
        lacking.join(" ")
    )))
}

/// `embed`'s output schema: the input's columns, then the vector of the model's width.
fn embed_schema(
    input: &ArrowSchema,
    output: &str,
    config_path: &Path,
    config: &serde_json::Value,
) -> Result<String, CliError> {
    let width = hidden_size(config).ok_or_else(|| {
        bad_input(anyhow!(
            "flywheel:embed: {} gives no hidden size (hidden_size, d_model, n_embd or dim); give the output schema with --schema",
            config_path.display()
        ))
    })?;
    let mut fields = Vec::new();
    for f in input.fields() {
        let ours = flywheel_formats::Field::from_arrow(f).ok_or_else(|| {
            bad_input(anyhow!(
                "flywheel:embed: input column '{}' ({}) has no type in flywheel's schema language; give the output schema with --schema",
                f.name(),
                f.data_type()
            ))
        })?;
        fields.push(format!("{}: {}?", ours.name, ours.ty));
    }
    fields.push(format!("{output}: vector<{width}, fp16>"));
    Ok(fields.join(" | "))
}
