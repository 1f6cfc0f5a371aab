//! Command-line flags.

use std::path::PathBuf;

use clap::Parser;

/// PicoLM's OpenAI-compatible server: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
/// `GET /health`.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(name = "picolm-server", version, about)]
pub struct Args {
    /// The GGUF model file.
    pub model: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Context length in tokens of each slot (0: the model's own, at most 4096).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    pub n_ctx: usize,
    /// Compute threads (0: one per CPU).
    #[arg(short = 'j', long = "threads", default_value_t = 0)]
    pub threads: usize,
    /// Require `Authorization: Bearer KEY` on /v1/ endpoints (also read from PICOLM_API_KEY).
    #[arg(long, env = "PICOLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests generated at once, each with its own KV cache.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Requests that may wait for a slot; beyond them a request is refused with 503.
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// Largest request body (bytes, or with a KiB/MiB/KB/MB suffix); larger bodies get 413.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub max_body_bytes: usize,
    /// Seconds a client may take to send its request headers, and separately its body.
    #[arg(long, default_value_t = 30)]
    pub read_timeout: u64,
    /// The model name reported by /v1/models (default: the file name without .gguf).
    #[arg(long)]
    pub alias: Option<String>,
}

/// Parses `8MiB`, `512KiB`, `1MB`, `65536`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("{s:?} is not a size (use e.g. 8MiB, 512KiB or 1048576)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(mult).filter(|&b| b > 0).ok_or_else(|| format!("{s:?} is not a usable size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("8XB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn defaults_and_flags() {
        let a = Args::try_parse_from(["picolm-server", "m.gguf"]).unwrap();
        assert_eq!((a.host.as_str(), a.port, a.parallel, a.max_body_bytes), ("127.0.0.1", 8000, 1, 8 << 20));
        let a = Args::try_parse_from([
            "picolm-server",
            "m.gguf",
            "-c",
            "512",
            "-j",
            "2",
            "--api-key",
            "k",
            "--parallel",
            "2",
            "--port",
            "0",
        ])
        .unwrap();
        assert_eq!((a.n_ctx, a.threads, a.api_key.as_deref(), a.parallel, a.port), (512, 2, Some("k"), 2, 0));
        assert!(Args::try_parse_from(["picolm-server", "m.gguf", "--parallel", "0"]).is_err());
        assert!(Args::try_parse_from(["picolm-server"]).is_err());
    }
}
