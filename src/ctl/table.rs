//! Plain-text tables of the API's answers.

use serde_json::Value;

/// How to print an answer.
#[derive(Debug, Clone, Copy)]
pub enum View {
    /// An array of container records.
    Containers,
    /// `{"host": …, "containers": […]}`.
    OneHost,
    /// An array of host records.
    Hosts,
    /// An array of arbitrary objects.
    Records,
    /// One object, as `key  value` lines.
    Record,
}

const CONTAINER_COLUMNS: [&str; 9] =
    ["host", "name", "id", "state", "packet_loss", "threshold", "restarts", "last_restart", "ip"];
const HOST_COLUMNS: [&str; 6] = ["name", "status", "last_heartbeat", "threshold", "containers", "endpoint"];

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

/// Aligned columns with a header row.
pub fn grid(columns: &[&str], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|c| text(&r[*c])).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let line = |vals: Vec<String>| {
        let padded: Vec<String> = vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|c| c.to_uppercase()).collect());
    for r in cells {
        out.push_str(&line(r));
    }
    out
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
            Self::Records => {
                let list = rows(v);
                let mut keys: Vec<&str> = Vec::new();
                for k in list.iter().filter_map(Value::as_object).flat_map(|o| o.keys()) {
                    if !keys.contains(&k.as_str()) {
                        keys.push(k);
                    }
                }
                grid(&keys, &list)
            }
            Self::Record => match v.as_object() {
                Some(o) => {
                    let w = o.keys().map(String::len).max().unwrap_or(0);
                    o.iter().map(|(k, x)| format!("{k:<w$}  {}\n", text(x))).collect()
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

    #[test]
    fn grid_aligns_columns_and_shows_null_as_a_dash() {
        let rows = [json!({"name": "web", "state": "running"}), json!({"name": "database", "state": null})];
        assert_eq!(grid(&["name", "state"], &rows), "NAME      STATE\nweb       running\ndatabase  -\n");
    }
}
