//! Numbers for people: `12.3 ms`, `45 req/s`, `180 MiB`. The dashboard's script formats with the
//! same rules (`assets/dashboard.html`, `fmt`), so both show a value alike.
//!
//! | value | rule | examples |
//! |---|---|---|
//! | milliseconds | two decimals under 1, one under 100, none under 1000, then seconds | `0.45 ms`, `12.3 ms`, `250 ms`, `1.23 s` |
//! | rate per second | one decimal under 10, none under 10 000, then thousands | `0.5 req/s`, `45 req/s`, `12.3k pkt/s` |
//! | percent | one decimal under 100, none from 100 (CPU of one core goes past it) | `3.2 %`, `250 %` |
//! | bytes | binary units, one decimal under 10 of the unit | `512 B`, `180 MiB`, `1.5 GiB` |
//! | load | two decimals | `0.52` |
//!
//! Zero is `0` in every rule.

/// A duration in milliseconds.
pub fn millis(ms: f64) -> String {
    match ms {
        0.0 => "0 ms".to_owned(),
        v if v < 1.0 => format!("{v:.2} ms"),
        v if v < 99.95 => format!("{v:.1} ms"),
        v if v < 999.5 => format!("{v:.0} ms"),
        v => format!("{:.2} s", v / 1000.0),
    }
}

/// A rate per second with its unit (`req`, `pkt`).
pub fn rate(per_sec: f64, unit: &str) -> String {
    let n = match per_sec {
        0.0 => "0".to_owned(),
        v if v < 9.95 => format!("{v:.1}"),
        v if v < 9999.5 => format!("{v:.0}"),
        v => format!("{:.1}k", v / 1000.0),
    };
    format!("{n} {unit}/s")
}

/// A percentage.
pub fn percent(p: f64) -> String {
    match p {
        0.0 => "0 %".to_owned(),
        v if v < 99.95 => format!("{v:.1} %"),
        v => format!("{v:.0} %"),
    }
}

/// A share from 0 to 1, as a percentage.
pub fn share(s: f64) -> String {
    percent(s * 100.0)
}

/// A size in bytes, in binary units.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    #[allow(clippy::cast_precision_loss, reason = "a display value: three significant digits are shown")]
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1023.5 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 9.95 { format!("{v:.1} {}", UNITS[unit]) } else { format!("{v:.0} {}", UNITS[unit]) }
}

/// A load average.
pub fn load(l: f64) -> String {
    format!("{l:.2}")
}

/// An RFC 3339 time with at most `digits` digits of its fraction of a second
/// (`…T08:00:01.234567Z` → `…T08:00:01Z` with none, `…T08:00:01.2Z` with one).
pub fn time(t: &str, digits: usize) -> String {
    let Some((whole, rest)) = t.split_once('.') else { return t.to_owned() };
    let zone = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let fraction = &rest[..(rest.len() - zone.len()).min(digits)];
    if fraction.is_empty() { format!("{whole}{zone}") } else { format!("{whole}.{fraction}{zone}") }
}

/// The unit of a container's workload: `req` with a response-time probe (the manager counts
/// connections then), `pkt` without. `unit` is a series' `workload_unit` when there is one.
pub fn workload_unit(unit: Option<&str>, probed: bool) -> &'static str {
    match unit {
        Some("requests") => "req",
        Some("packets") => "pkt",
        _ if probed => "req",
        _ => "pkt",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_three_significant_digits_then_turn_to_seconds() {
        let shown: Vec<String> = [0.0, 0.456, 5.0, 12.34, 99.96, 250.4, 999.4, 999.6, 1234.0].map(millis).to_vec();
        assert_eq!(shown, ["0 ms", "0.46 ms", "5.0 ms", "12.3 ms", "100 ms", "250 ms", "999 ms", "1.00 s", "1.23 s"]);
    }

    #[test]
    fn rates_name_their_unit_and_shorten_thousands() {
        assert_eq!(rate(0.0, "req"), "0 req/s");
        assert_eq!(rate(0.5, "req"), "0.5 req/s");
        assert_eq!(rate(45.2, "req"), "45 req/s");
        assert_eq!(rate(9999.0, "pkt"), "9999 pkt/s");
        assert_eq!(rate(12_345.0, "pkt"), "12.3k pkt/s");
    }

    #[test]
    fn percentages_and_shares() {
        assert_eq!([0.0, 3.21, 99.9, 250.0].map(percent), ["0 %", "3.2 %", "99.9 %", "250 %"]);
        assert_eq!(share(0.25), "25.0 %");
    }

    #[test]
    fn bytes_in_binary_units() {
        let shown = [0, 512, 1536, 180 << 20, (3 << 30) / 2, 20 << 30, u64::MAX].map(bytes);
        assert_eq!(shown, ["0 B", "512 B", "1.5 KiB", "180 MiB", "1.5 GiB", "20 GiB", "16384 PiB"]);
        assert_eq!(bytes(1023 * 1024 + 1000), "1.0 MiB", "never `1024 KiB`");
    }

    #[test]
    fn times_shorten_their_fraction_and_keep_their_zone() {
        assert_eq!(time("2026-05-01T08:00:01.123456789Z", 0), "2026-05-01T08:00:01Z");
        assert_eq!(time("2026-05-01T08:00:01.123456789Z", 1), "2026-05-01T08:00:01.1Z");
        assert_eq!(time("2026-05-01T08:00:01.5+02:00", 3), "2026-05-01T08:00:01.5+02:00");
        assert_eq!(time("2026-05-01T08:00:01Z", 1), "2026-05-01T08:00:01Z");
        assert_eq!(load(0.5), "0.50");
    }

    #[test]
    fn workload_counts_requests_with_a_probe_and_packets_without() {
        assert_eq!(workload_unit(None, true), "req");
        assert_eq!(workload_unit(None, false), "pkt");
        assert_eq!(workload_unit(Some("packets"), true), "pkt");
        assert_eq!(workload_unit(Some("requests"), false), "req");
    }
}
