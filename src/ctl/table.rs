//! Plain-text tables of the API's answers.

use serde_json::Value;

use super::human;

/// How to print an answer.
#[derive(Debug, Clone, Copy)]
pub enum View {
    /// An array of container records.
    Containers,
    /// `{"host": …, "containers": […]}`.
    OneHost,
    /// An array of host records.
    Hosts,
    /// A container's series: a title line, then one row per point.
    Series,
    /// An array of arbitrary objects.
    Records,
    /// One object, as `key  value` lines.
    Record,
}

/// How a cell shows its field ([`human`] has the rules); null is always `-`.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// As the JSON says.
    Text,
    Millis,
    /// A container's workload, in the unit its row implies (`workload_unit`, else its probe).
    Workload,
    /// A rate in a unit known for the whole table (a series' points).
    Rate(&'static str),
    Percent,
    /// 0–1, shown as a percentage.
    Share,
    Bytes,
    /// A host's available memory, with its total beside it.
    MemoryOf,
    Load,
    /// RFC 3339 with this many digits of the second's fraction.
    Time(usize),
}

/// One column: its header, the record field it shows, and how.
#[derive(Debug, Clone, Copy)]
struct Column<'a> {
    header: &'a str,
    key: &'a str,
    format: Format,
}

const fn col(header: &'static str, key: &'static str, format: Format) -> Column<'static> {
    Column { header, key, format }
}

const CONTAINER_COLUMNS: [Column<'static>; 13] = [
    col("host", "host", Format::Text),
    col("name", "name", Format::Text),
    col("id", "id", Format::Text),
    col("state", "state", Format::Text),
    col("loss", "packet_loss", Format::Percent),
    col("response", "response_ms", Format::Millis),
    col("workload", "workload", Format::Workload),
    col("cpu", "cpu_percent", Format::Percent),
    col("memory", "memory_bytes", Format::Bytes),
    col("threshold", "threshold", Format::Text),
    col("restarts", "restarts", Format::Text),
    col("last_restart", "last_restart", Format::Time(0)),
    col("ip", "ip", Format::Text),
];
const HOST_COLUMNS: [Column<'static>; 9] = [
    col("name", "name", Format::Text),
    col("status", "status", Format::Text),
    col("last_heartbeat", "last_heartbeat", Format::Time(0)),
    col("threshold", "threshold", Format::Text),
    col("containers", "containers", Format::Text),
    col("cpu_busy", "cpu_busy_percent", Format::Percent),
    col("memory_available", "memory_available_bytes", Format::MemoryOf),
    col("load", "load1", Format::Load),
    col("endpoint", "endpoint", Format::Text),
];

/// The columns of a series' points; `unit` is what its workload counts.
fn series_columns(unit: &'static str) -> [Column<'static>; 8] {
    [
        col("at", "at", Format::Time(1)),
        col("response", "response_ms", Format::Millis),
        col("failed", "response_failed", Format::Share),
        col("workload", "workload", Format::Rate(unit)),
        col("cpu", "cpu_percent", Format::Percent),
        col("throttled", "cpu_throttled", Format::Share),
        col("memory", "memory_bytes", Format::Bytes),
        col("loss", "packet_loss", Format::Percent),
    ]
}

/// How a field of a one-object answer shows (`hmsctl container`, `hmsctl probe`, `hmsctl config`).
fn format_of(key: &str) -> Format {
    match key {
        "response_ms" => Format::Millis,
        "workload" => Format::Workload,
        "cpu_percent" | "cpu_busy_percent" | "cpu_pressure" | "memory_pressure" | "packet_loss" => Format::Percent,
        k if k.ends_with("_bytes") => Format::Bytes,
        "load1" => Format::Load,
        _ => Format::Text,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            n.as_f64().filter(|f| f.fract() != 0.0).map_or_else(|| n.to_string(), |f| format!("{f:.1}"))
        }
        other => other.to_string(),
    }
}

/// The text of one cell of `row`.
fn cell(row: &Value, c: &Column<'_>) -> String {
    let v = &row[c.key];
    match (c.format, v) {
        (Format::Time(digits), Value::String(s)) => human::time(s, digits),
        (Format::Text, _) => text(v),
        (format, Value::Number(n)) => match (format, n.as_f64(), n.as_u64()) {
            (Format::Bytes, _, Some(b)) => human::bytes(b),
            (Format::MemoryOf, _, Some(b)) => match row["memory_total_bytes"].as_u64() {
                Some(total) => format!("{} / {}", human::bytes(b), human::bytes(total)),
                None => human::bytes(b),
            },
            (Format::Millis, Some(f), _) => human::millis(f),
            (Format::Workload, Some(f), _) => {
                human::rate(f, human::workload_unit(row["workload_unit"].as_str(), !row["probe"].is_null()))
            }
            (Format::Rate(unit), Some(f), _) => human::rate(f, unit),
            (Format::Percent, Some(f), _) => human::percent(f),
            (Format::Share, Some(f), _) => human::share(f),
            (Format::Load, Some(f), _) => human::load(f),
            _ => text(v),
        },
        _ => text(v),
    }
}

/// Aligned columns with a header row.
fn grid(columns: &[Column<'_>], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|c| cell(r, c)).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.header.len()]).max().unwrap_or(0))
        .collect();
    let line = |vals: Vec<String>| {
        let padded: Vec<String> = vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|c| c.header.to_uppercase()).collect());
    for r in cells {
        out.push_str(&line(r));
    }
    out
}

/// A series: what it is, then its points.
fn series(v: &Value) -> String {
    let unit = human::workload_unit(v["workload_unit"].as_str(), false);
    let points = v["points"].as_array().cloned().unwrap_or_default();
    let period = v["period_secs"].as_f64().map_or_else(|| "-".to_owned(), |s| format!("{s} s"));
    let limit = v["memory_limit_bytes"].as_u64().map_or_else(|| "none".to_owned(), human::bytes);
    let title = format!(
        "{} ({}) on {}: {} points, one every {period}; workload in {unit}/s; memory limit {limit}\n",
        text(&v["name"]),
        text(&v["container"]),
        text(&v["host"]),
        points.len(),
    );
    format!("{title}\n{}", grid(&series_columns(unit), &points))
}

impl View {
    pub fn render(self, v: &Value) -> String {
        let rows = |v: &Value| v.as_array().cloned().unwrap_or_default();
        match self {
            Self::Containers => grid(&CONTAINER_COLUMNS, &rows(v)),
            Self::Hosts => grid(&HOST_COLUMNS, &rows(v)),
            Self::OneHost => {
                let host = grid(&HOST_COLUMNS, std::slice::from_ref(&v["host"]));
                format!("{host}\n{}", grid(&CONTAINER_COLUMNS, &rows(&v["containers"])))
            }
            Self::Series => series(v),
            Self::Records => {
                let list = rows(v);
                let mut keys: Vec<&str> = Vec::new();
                for k in list.iter().filter_map(Value::as_object).flat_map(|o| o.keys()) {
                    if !keys.contains(&k.as_str()) {
                        keys.push(k);
                    }
                }
                let columns: Vec<Column<'_>> =
                    keys.iter().map(|k| Column { header: k, key: k, format: Format::Text }).collect();
                grid(&columns, &list)
            }
            Self::Record => match v.as_object() {
                Some(o) => {
                    let w = o.keys().map(String::len).max().unwrap_or(0);
                    let show = |k: &str| cell(v, &Column { header: k, key: k, format: format_of(k) });
                    o.keys().map(|k| format!("{k:<w$}  {}\n", show(k))).collect()
                }
                None => format!("{}\n", text(v)),
            },
        }
    }
}

/// One line per server-sent event.
pub fn event_line(name: &str, data: &str) -> String {
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    let now = crate::model::rfc3339(time::OffsetDateTime::now_utc());
    match name {
        "containers" => {
            let list = v["containers"].as_array().cloned().unwrap_or_default();
            let mut out = String::new();
            for c in &list {
                out.push_str(&format!(
                    "{now} container {}/{} {} loss={} restarts={}\n",
                    text(&c["host"]),
                    text(&c["name"]),
                    text(&c["state"]),
                    text(&c["packet_loss"]),
                    text(&c["restarts"])
                ));
            }
            for id in v["removed"].as_array().into_iter().flatten() {
                out.push_str(&format!("{now} container {}/{} removed\n", text(&v["host"]), text(id)));
            }
            out
        }
        "host" => format!("{now} host {} {}\n", text(&v["host"]["name"]), text(&v["host"]["status"])),
        other => format!("{now} {other} {data}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(keys: &[&'static str]) -> Vec<Column<'static>> {
        keys.iter().map(|k| col(k, k, Format::Text)).collect()
    }

    #[test]
    fn grid_aligns_columns_and_shows_null_as_a_dash() {
        let rows = [json!({"name": "web", "state": "running"}), json!({"name": "database", "state": null})];
        assert_eq!(grid(&plain(&["name", "state"]), &rows), "NAME      STATE\nweb       running\ndatabase  -\n");
    }

    fn container(probe: Option<&str>, response: Option<f64>) -> Value {
        json!({
            "host": "vm1", "name": "web-1", "id": "0123456789ab", "image": "svc:1", "ip": "172.17.0.12",
            "state": "running", "packet_loss": 0.0, "threshold": 30, "restarts": 2,
            "last_restart": "2026-05-01T08:00:01.123456789Z", "probe": probe, "response_ms": response,
            "workload": 45.2, "cpu_percent": 12.34, "memory_bytes": 188_743_680_u64,
        })
    }

    #[test]
    fn container_tables_show_signals_in_human_units_and_stay_narrow() {
        let rows = [container(Some("http://:8080/"), Some(12.34)), container(None, None)];
        let table = View::Containers.render(&Value::Array(rows.to_vec()));
        let lines: Vec<&str> = table.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(header[4..9], ["LOSS", "RESPONSE", "WORKLOAD", "CPU", "MEMORY"]);
        for want in ["0 %", "12.3 ms", "45 req/s", "12.3 %", "180 MiB", "2026-05-01T08:00:01Z"] {
            assert!(lines[1].contains(want), "{want} in {}", lines[1]);
        }
        assert!(
            lines[2].contains(" - ") && lines[2].contains("45 pkt/s"),
            "no probe: no response, packets: {}",
            lines[2]
        );
        let widest = lines.iter().map(|l| l.chars().count()).max().unwrap();
        assert!(widest <= 140, "{widest} columns:\n{table}");
    }

    #[test]
    fn host_tables_show_cpu_memory_and_load_and_dashes_when_offline() {
        let online = json!({"name": "vm1", "status": "online", "last_heartbeat": "2026-05-01T08:00:01.5Z",
            "threshold": 30, "containers": 4, "endpoint": null, "cpu_busy_percent": 37.5,
            "memory_available_bytes": 3_435_973_837_u64, "memory_total_bytes": 8_589_934_592_u64, "load1": 1.5});
        let offline = json!({"name": "vm2", "status": "offline", "last_heartbeat": null, "threshold": 30,
            "containers": 0, "endpoint": "10.0.0.2:4000", "cpu_busy_percent": null,
            "memory_available_bytes": null, "memory_total_bytes": null, "load1": null});
        let table = View::Hosts.render(&json!([online, offline]));
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("CPU_BUSY  MEMORY_AVAILABLE   LOAD"), "{table}");
        assert!(lines[1].contains("37.5 %    3.2 GiB / 8.0 GiB  1.50"), "{table}");
        assert!(lines[2].contains("-         -                  -"), "{table}");
    }

    #[test]
    fn a_series_prints_what_it_is_then_one_row_per_point() {
        let point = |at: &str, ms: Option<f64>| {
            json!({"at": at, "response_ms": ms, "response_failed": ms.map(|_| 0.25), "workload": 3.0,
                "cpu_percent": 150.0, "cpu_throttled": 0.0, "memory_bytes": 1_048_576, "packet_loss": null})
        };
        let v = json!({"host": "vm1", "container": "0123456789ab", "name": "web", "period_secs": 1.0,
            "workload_unit": "requests", "memory_limit_bytes": 268_435_456,
            "points": [point("2026-05-01T08:00:01.234Z", Some(42.0)), point("2026-05-01T08:00:02.2Z", None)]});
        let text = View::Series.render(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "web (0123456789ab) on vm1: 2 points, one every 1 s; workload in req/s; memory limit 256 MiB"
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["AT", "RESPONSE", "FAILED", "WORKLOAD", "CPU", "THROTTLED", "MEMORY", "LOSS"]
        );
        assert_eq!(lines[3], "2026-05-01T08:00:01.2Z  42.0 ms   25.0 %  3.0 req/s  150 %  0 %        1.0 MiB  -");
        assert!(lines[4].starts_with("2026-05-01T08:00:02.2Z  -         -"), "{text}");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn one_record_shows_its_signals_in_human_units() {
        let text = View::Record.render(&container(Some("tcp://:80"), Some(1500.0)));
        assert!(text.contains("response_ms   1.50 s\n"), "{text}");
        assert!(text.contains("memory_bytes  180 MiB\n") && text.contains("workload      45 req/s\n"), "{text}");
        assert!(
            text.contains("last_restart  2026-05-01T08:00:01.123456789Z\n"),
            "full times in the detail view: {text}"
        );
    }
}
