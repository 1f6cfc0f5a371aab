//! `picolm-testdata`: derives the data files of the test suite from the models `scripts/fetch-models.sh` fetched,
//! with PicoLM's own GGUF reader, writer and quantizer (no Python packages).
//!
//!   picolm-testdata dequantize SRC.gguf DST.gguf F32|F16
//!       every matrix converted to F32 or F16 (vectors F32), all metadata kept with `general.file_type` set:
//!       exactly `picolm quantize SRC DST F32|F16`, the reference F32/F16 SmolLM2 files of the goldens
//!   picolm-testdata vocab-only SRC.gguf DST.gguf [--space-prefix true|false] [--drop-template]
//!       tokenizer metadata only (the SentencePiece test vocabularies)
//!
//! Output is written through `DST.part` and renamed into place. `scripts/fetch-models.sh` checks the sha256 of
//! every derived file against the value recorded with the goldens (`tests/golden/README.md`).

mod error;
mod vocab_only;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use picolm_core::gguf::GgufFile;
use picolm_core::quantize::{quantize_file, QuantScheme};
use picolm_core::GgmlType;

use error::ToolError;
use vocab_only::{vocab_only, VocabOptions};

fn open(path: &Path) -> Result<GgufFile, ToolError> {
    GgufFile::open(path).map_err(|source| ToolError::Gguf { path: path.to_path_buf(), source })
}

fn parse_float_type(s: &str) -> Result<GgmlType, ToolError> {
    match s.to_ascii_uppercase().as_str() {
        "F32" => Ok(GgmlType::F32),
        "F16" => Ok(GgmlType::F16),
        _ => Err(ToolError::Usage(format!("unknown float type {s:?} (expected F32 or F16)"))),
    }
}

fn parse_vocab_options(args: &[String]) -> Result<VocabOptions, ToolError> {
    let mut opts = VocabOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--drop-template" => opts.drop_template = true,
            "--space-prefix" => {
                opts.space_prefix = Some(match it.next().map(String::as_str) {
                    Some("true") => true,
                    Some("false") => false,
                    other => {
                        return Err(ToolError::Usage(format!("--space-prefix needs true or false, got {other:?}")))
                    }
                })
            }
            other => return Err(ToolError::Usage(format!("unknown option {other:?}"))),
        }
    }
    Ok(opts)
}

fn run(args: &[String]) -> Result<PathBuf, ToolError> {
    let (cmd, src, dst, rest) = match args {
        [cmd, src, dst, rest @ ..] => (cmd.as_str(), PathBuf::from(src), PathBuf::from(dst), rest),
        _ => return Err(ToolError::Usage("missing arguments".into())),
    };
    match cmd {
        "dequantize" => {
            let [ty] = rest else { return Err(ToolError::Usage("dequantize needs SRC DST F32|F16".into())) };
            let scheme = QuantScheme::Uniform(parse_float_type(ty)?);
            quantize_file(&src, &dst, scheme, &mut |_, _| {}).map_err(|source| ToolError::Quantize {
                src: src.clone(),
                dst: dst.clone(),
                source: Box::new(source),
            })?;
        }
        "vocab-only" => {
            let opts = parse_vocab_options(rest)?;
            let writer = vocab_only(&open(&src)?, &src, opts)?;
            writer.write_file(&dst).map_err(|source| ToolError::Gguf { path: dst.clone(), source })?;
        }
        other => return Err(ToolError::Usage(format!("unknown command {other:?}"))),
    }
    Ok(dst)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(dst) => {
            eprintln!("picolm-testdata: wrote {}", dst.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("picolm-testdata: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        let bad: [&[&str]; 6] = [
            &[],
            &["dequantize", "a", "b"],
            &["dequantize", "a", "b", "Q4_0"],
            &["frob", "a", "b"],
            &["vocab-only", "a", "b", "--space-prefix", "yes"],
            &["vocab-only", "a", "b", "--space-prefix"],
        ];
        for a in bad {
            assert!(matches!(run(&args(a)), Err(ToolError::Usage(_))), "{a:?}");
        }
    }

    #[test]
    fn a_missing_source_is_named() {
        let e = run(&args(&["vocab-only", "/nonexistent/x.gguf", "/nonexistent/y.gguf"])).unwrap_err();
        assert!(matches!(e, ToolError::Gguf { .. }) && e.to_string().contains("/nonexistent/x.gguf"), "{e}");
        let e = run(&args(&["dequantize", "/nonexistent/x.gguf", "/nonexistent/y.gguf", "f16"])).unwrap_err();
        assert!(matches!(e, ToolError::Quantize { .. }) && e.to_string().contains("/nonexistent/x.gguf"), "{e}");
    }
}
