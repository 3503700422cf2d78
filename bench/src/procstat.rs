//! CPU time and memory of a service process, read from `/proc` (Linux only; elsewhere the
//! readings are absent and the results say so).

use serde::Serialize;

/// utime + stime in clock ticks, from the text of `/proc/PID/stat`. The command name (field
/// 2) is in parentheses and may hold spaces, so fields are counted after the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" come field 3 (state) onwards: utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; Linux's USER_HZ is 100 everywhere else).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_seconds(pid: u32, ticks_per_second: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat_ticks(&stat)? as f64 / ticks_per_second as f64)
}

/// A `kB` field of `/proc/PID/status`.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS (`echo 5 > clear_refs`), so
/// that the peak read after a run belongs to that run. Needs the same user as the process.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// A service process whose resources are measured.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    /// `doorward` (both services in one process), `token-service` or `auth-web`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// What one process used during one timed run.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUsage {
    /// The process.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// CPU seconds (user + system) during the timed phase (after the warm-up).
    pub cpu_seconds: Option<f64>,
    /// CPU seconds per 1,000 completed requests of the timed phase.
    pub cpu_seconds_per_1000_requests: Option<f64>,
    /// Share of the machine's cores the process used during the timed phase (1.0 = one
    /// core busy all the time).
    pub cores_busy: Option<f64>,
    /// Resident memory before the warm-up (`VmRSS`), KiB.
    pub idle_rss_kib: Option<u64>,
    /// Peak resident memory (`VmHWM`), KiB: over this run when `peak_rss_reset` is true,
    /// otherwise since the process started.
    pub peak_rss_kib: Option<u64>,
    /// Whether the peak was reset before the run.
    pub peak_rss_reset: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A real line, with a command name holding a space and a parenthesis.
        let stat = "4242 (doorward (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 25 0 0 20 0 9 0 123456 300000000 5000 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(175));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields_in_kib() {
        let status =
            "Name:\tdoorward\nVmPeak:\t  900000 kB\nVmHWM:\t   54321 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(54_321));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(12_345));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        // "VmRSS" must not match a longer key that starts the same way.
        assert_eq!(parse_status_kib("VmRSSx:\t1 kB\n", "VmRSS"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let pid = std::process::id();
        let ticks = ticks_per_second();
        assert!(cpu_seconds(pid, ticks).is_some_and(|s| s >= 0.0));
        assert!(status_kib(pid, "VmRSS").is_some_and(|kib| kib > 0));
        assert!(status_kib(pid, "VmHWM").is_some_and(|kib| kib > 0));
    }
}
