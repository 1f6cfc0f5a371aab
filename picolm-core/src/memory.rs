//! Process memory as the operating system counts it (Linux `/proc/self/status`): peak and current resident set,
//! split into anonymous memory (heap, KV cache, buffers) and file-backed pages (the mapped model).

/// Resident memory of this process, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Peak resident set size since the process started (`VmHWM`).
    pub peak_rss: u64,
    /// Current resident set size (`VmRSS`).
    pub rss: u64,
    /// Current anonymous resident memory (`RssAnon`).
    pub rss_anon: u64,
    /// Current resident file-backed pages, e.g. the mapped model (`RssFile`).
    pub rss_file: u64,
}

impl MemoryUsage {
    /// Reads the current figures; `None` where `/proc` is not available (non-Linux systems).
    pub fn current() -> Option<MemoryUsage> {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        Some(MemoryUsage::parse_status(&text))
    }

    /// Parses the text of a `/proc/<pid>/status` file (missing fields read as 0).
    pub fn parse_status(text: &str) -> MemoryUsage {
        let mut m = MemoryUsage::default();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else { continue };
            let Ok(kb) = value.parse::<u64>() else { continue };
            let bytes = kb * 1024;
            match key {
                "VmHWM:" => m.peak_rss = bytes,
                "VmRSS:" => m.rss = bytes,
                "RssAnon:" => m.rss_anon = bytes,
                "RssFile:" => m.rss_file = bytes,
                _ => {}
            }
        }
        m
    }
}

/// Returns the heap memory that is free but still held by the allocator to the operating system (glibc's
/// `malloc_trim`; a no-op elsewhere). Loading a model allocates and frees a lot (metadata parsed more than once
/// while the header is read, tokenizer tables being built); streaming mode calls this after load so that the
/// resident set it plans from is what the model really keeps.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes an integer and only returns unused heap pages to the kernel; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_fields() {
        let m = MemoryUsage::parse_status(
            "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\nRssAnon:\t 512 kB\nRssFile:\t 256 kB\n",
        );
        assert_eq!(m, MemoryUsage { peak_rss: 2 << 20, rss: 1 << 20, rss_anon: 512 << 10, rss_file: 256 << 10 });
    }

    #[test]
    fn current_reports_nonzero_on_linux() {
        if cfg!(target_os = "linux") {
            let m = MemoryUsage::current().expect("/proc/self/status");
            assert!(m.rss > 0 && m.peak_rss >= m.rss);
        }
    }
}
